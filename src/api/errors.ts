import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isDatabaseUnavailable } from "../db/unavailable.js";
import { ERROR_STATUS, type ErrorCode } from "../vocabulary.js";

export { ERROR_STATUS, type ErrorCode } from "../vocabulary.js";

// Every code's status must be one hono can send with a body.
const statusesSendable: Record<ErrorCode, ContentfulStatusCode> = ERROR_STATUS;
void statusesSendable;

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

/** Node's errors for a request body that stopped arriving: the client went away or timed out. */
const BODY_LOST_CODES = new Set([
  "ECONNRESET",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_HTTP_REQUEST_TIMEOUT",
]);

/**
 * The request's body never arrived whole: the client aborted, or Node's
 * request timeout cut it. Both the error's code and the Node request's own
 * state must say so, so that a database connection reset (also ECONNRESET)
 * is never mistaken for a client that left.
 */
export function isBodyLost(err: unknown, c: Context): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !BODY_LOST_CODES.has(code)) return false;
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return incoming !== undefined && (incoming.errored != null || !incoming.complete);
}

/**
 * The one place errors become responses. Anything that is not an ApiError is
 * a bug: it is logged in full and answered with a generic 500 that leaks
 * neither the stack nor the message. A database that cannot be reached is a
 * 503 `unavailable` (logged at warn), wherever the query ran. A client that
 * abandoned its request is no bug: it is answered 400 (to nobody, most
 * likely) and logged by the request line alone, so the "unhandled error"
 * alert stays meaningful.
 */
export function makeErrorHandler(
  log: (err: unknown, c: Context) => void,
  logUnavailable: (err: unknown, c: Context) => void = () => {},
) {
  return function onError(err: Error, c: Context) {
    if (!(err instanceof ApiError) && isBodyLost(err, c)) {
      c.header("Connection", "close");
      return c.json(errorBody("invalid_request", "the request's body did not arrive whole"), 400);
    }
    // After the body check: a lost body's ECONNRESET is the client's socket, not the database's.
    if (!(err instanceof ApiError) && isDatabaseUnavailable(err)) {
      logUnavailable(err, c);
      c.header("Retry-After", "2");
      return c.json(
        errorBody("unavailable", "the database is unreachable; nothing was changed, try again"),
        503,
      );
    }
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
