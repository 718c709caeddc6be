import type { Logger } from "../logger.js";
import type { Principal } from "./auth/principal.js";

/** What middleware puts on every request's context. */
export type ApiEnv = {
  Variables: {
    requestId: string;
    /** The request's logger: every line carries its request id. */
    log: Logger;
    /** Set by `requireAuth` on the routes behind it. */
    principal: Principal;
  };
};
