import type { PublicClient } from "viem";
import type { Db } from "../../db/connection.js";
import { createNonce } from "../../db/nonces.js";
import { verifySiwe } from "../auth/siwe.js";
import type { Authenticator } from "../auth/tokens.js";
import * as routes from "../contract/account-routes.js";
import { router } from "../router.js";

const NONCE_TTL_MS = 10 * 60_000;

export interface AuthRoutesDeps {
  db: Db;
  auth: Authenticator;
  /** SIWE_DOMAINS. When empty, development accepts the host the request reached. */
  siweDomains: string[];
  /** False in production: there the Host header is the client's to choose, so SIWE_DOMAINS is required. */
  siweHostFallback: boolean;
  siweChainIds: number[];
  publicClient?: PublicClient | undefined;
}

/** `GET /auth/nonce` and `POST /auth/siwe` (SPEC.md section 3, wallet auth). */
export function authRoutes(deps: AuthRoutesDeps) {
  const app = router();

  app.openapi(routes.getNonce, async (c) => {
    const { nonce, expiresAt } = await createNonce(deps.db, NONCE_TTL_MS);
    c.header("cache-control", "no-store");
    return c.json({ nonce, expires_at: expiresAt.toISOString() }, 200);
  });

  app.openapi(routes.signIn, async (c) => {
    const body = c.req.valid("json");
    const host = c.req.header("host");
    const domains =
      deps.siweDomains.length > 0 ? deps.siweDomains : deps.siweHostFallback && host ? [host] : [];
    const { address, expirationTime } = await verifySiwe(
      { db: deps.db, domains, chainIds: deps.siweChainIds, publicClient: deps.publicClient },
      body,
    );
    const { token, expiresAt } = await deps.auth.issueSession(address, expirationTime);
    c.get("log").info({ address }, "wallet signed in");
    c.header("cache-control", "no-store");
    return c.json({ token, address, expires_at: expiresAt.toISOString() }, 200);
  });

  return app;
}
