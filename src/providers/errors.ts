/** Stable codes of a failed provider call; they become the execution's `error.code`. */
export type ProviderErrorCode =
  | "provider_error" // 5xx after the last retry
  | "provider_rejected" // 4xx: the request itself is wrong; never retried
  | "rate_limited" // 429 after the last retry
  | "connection_failed" // could not connect, or the connection broke
  | "bad_response" // the provider answered something we cannot read
  | "stalled" // no bytes for stall_ms
  | "timeout" // the execution's or provider's timeout_ms passed
  | "remote_failed" // an async provider reported the work failed
  | "process_failed" // a local process exited unsuccessfully
  | "unknown_provider"; // the job names a provider no longer configured

export class ProviderError extends Error {
  readonly code: ProviderErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;
  constructor(
    code: ProviderErrorCode,
    message: string,
    options: { retryable?: boolean; retryAfterMs?: number; status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "ProviderError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }
}

/** The error of a non-2xx response: 429 and 5xx are retryable (honouring Retry-After), other 4xx are not. */
export function statusError(
  provider: string,
  status: number,
  retryAfter: string | undefined,
  detail = "",
) {
  const suffix = detail ? `: ${detail.slice(0, 300)}` : "";
  if (status === 429) {
    return new ProviderError("rate_limited", `${provider} answered 429${suffix}`, {
      retryable: true,
      status,
      retryAfterMs: parseRetryAfter(retryAfter),
    });
  }
  if (status >= 500) {
    return new ProviderError("provider_error", `${provider} answered ${status}${suffix}`, {
      retryable: true,
      status,
      retryAfterMs: parseRetryAfter(retryAfter),
    });
  }
  return new ProviderError("provider_rejected", `${provider} answered ${status}${suffix}`, {
    status,
  });
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/** Maps what undici or the socket threw to a ProviderError; connection failures are retryable. */
export function networkError(provider: string, err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  const code =
    (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code !== undefined && CONNECTION_CODES.has(code)) {
    return new ProviderError("connection_failed", `${provider}: ${code} ${message}`, {
      retryable: true,
      cause: err,
    });
  }
  return new ProviderError("bad_response", `${provider}: ${message}`, { cause: err });
}
