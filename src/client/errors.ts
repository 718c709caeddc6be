import type { ErrorCode } from "../vocabulary.js";

/**
 * What a call can fail with: SPEC.md's codes (the server's `error.code`), or
 * one of the client's own for failures that never reached an answer.
 */
export type QuenchErrorCode =
  | ErrorCode
  /** No HTTP answer: connection refused, DNS, TLS, reset. */
  | "network_error"
  /** The caller's signal aborted the call. */
  | "aborted"
  /** An answer that is not SPEC's shape (a proxy's HTML page, say). */
  | "bad_response"
  /** The wallet refused or failed to sign. */
  | "signature_rejected";

export interface FieldProblem {
  path: string;
  message: string;
}

/** Every failure of a quench client call, with a stable `code` to branch on. */
export class QuenchError extends Error {
  override readonly name = "QuenchError";
  constructor(
    readonly code: QuenchErrorCode,
    message: string,
    /** The HTTP status; 0 when no answer came. */
    readonly status = 0,
    /** The error object's other fields: `details` for invalid_request, `status` for not_cancellable, … */
    readonly extra: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Field problems of an `invalid_request`. */
  get details(): FieldProblem[] {
    return Array.isArray(this.extra.details) ? (this.extra.details as FieldProblem[]) : [];
  }
}

export const isQuenchError = (err: unknown, code?: QuenchErrorCode): err is QuenchError =>
  err instanceof QuenchError && (code === undefined || err.code === code);

/** The QuenchError an HTTP error answer stands for. */
export async function errorFromResponse(res: Response): Promise<QuenchError> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const { code, message, ...extra } = body.error ?? {};
    if (typeof code === "string" && typeof message === "string") {
      return new QuenchError(code as ErrorCode, message, res.status, extra);
    }
  } catch {
    // Not JSON: reported below.
  }
  return new QuenchError(
    "bad_response",
    `unexpected answer ${res.status} ${res.statusText}: ${text.slice(0, 200)}`,
    res.status,
  );
}

/** A fetch failure as a QuenchError: the caller's abort, or the network. */
export function errorFromFetch(err: unknown, signal: AbortSignal | undefined): QuenchError {
  if (err instanceof QuenchError) return err;
  if (signal?.aborted)
    return new QuenchError("aborted", "the call was aborted", 0, {}, { cause: err });
  // Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, …) is its cause.
  const cause =
    err instanceof Error
      ? (err.cause as { code?: unknown; message?: unknown } | undefined)
      : undefined;
  const message = err instanceof Error ? err.message : String(err);
  const reason = typeof cause?.code === "string" ? cause.code : cause?.message;
  const why = typeof reason === "string" ? `${message} (${reason})` : message;
  return new QuenchError("network_error", `cannot reach quench: ${why}`, 0, {}, { cause: err });
}
