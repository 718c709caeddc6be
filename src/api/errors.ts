import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** SPEC.md section 3's error codes, each with its HTTP status. */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  not_cancellable: 409,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** An error a handler throws on purpose; `app.onError` turns it into SPEC's shape. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function errorBody(code: ErrorCode, message: string, extra: Record<string, unknown> = {}) {
  return { error: { code, message, ...extra } };
}

/**
 * The one place errors become responses. Anything that is not an ApiError is
 * a bug: it is logged in full and answered with a generic 500 that leaks
 * neither the stack nor the message.
 */
export function makeErrorHandler(log: (err: unknown, c: Context) => void) {
  return function onError(err: Error, c: Context) {
    if (err instanceof ApiError) {
      if (err.code === "unauthenticated") c.header("WWW-Authenticate", 'Bearer realm="quench"');
      return c.json(errorBody(err.code, err.message, err.extra), ERROR_STATUS[err.code]);
    }
    if (err instanceof HTTPException && err.status < 500) {
      // hono's own refusals (a malformed request it could not route, say) keep the shape too.
      return c.json(errorBody("invalid_request", err.message || "invalid request"), 400);
    }
    log(err, c);
    return c.json(errorBody("internal", "internal error"), 500);
  };
}
