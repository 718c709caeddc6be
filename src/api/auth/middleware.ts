import type { MiddlewareHandler } from "hono";
import type { ApiEnv } from "../env.js";
import type { Authenticator } from "./tokens.js";

/** Authenticates the bearer token (401 on any failure) and sets `principal`. */
export function requireAuth(auth: Authenticator): MiddlewareHandler<ApiEnv> {
  return async function requireAuth(c, next) {
    c.set("principal", await auth.authenticate(c.req.header("authorization")));
    await next();
  };
}
