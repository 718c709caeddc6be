import { OpenAPIHono } from "@hono/zod-openapi";
import type { ApiEnv } from "./env.js";
import { validationHook } from "./validation.js";

/**
 * A group of routes registered from their definitions (src/api/contract):
 * each validates its request with the definition's schemas, refusals are
 * SPEC.md's 400 with `details`, and the handler must answer one of the
 * definition's responses.
 */
export function router(): OpenAPIHono<ApiEnv> {
  return new OpenAPIHono<ApiEnv>({ defaultHook: validationHook });
}
