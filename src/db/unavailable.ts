import { setTimeout as sleep } from "node:timers/promises";

/** Socket errors of a database that cannot be reached, and postgres.js's own connection errors. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * SQLSTATEs that mean "not now" rather than "wrong": connection exceptions
 * (class 08), the server shutting down or starting up (57P01–57P03), a
 * statement timeout or cancel (57014), too many connections (53300), and a
 * serialization failure or deadlock (40001, 40P01).
 */
function transientSqlState(code: string): boolean {
  return (
    code.startsWith("08") ||
    ["57P01", "57P02", "57P03", "57014", "53300", "40001", "40P01"].includes(code)
  );
}

/**
 * True when `err` (or an error it wraps, as drizzle's DrizzleQueryError
 * wraps the driver's) says the database is unreachable or refused the work
 * for now: the request may succeed later, so it is a 503 `unavailable`,
 * never a 500. SPEC.md section 5: "Connection failures map to 503 in one place".
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  return unavailableCode(err) !== undefined;
}

/** The code that made `err` an unavailable database (for logs: no query text, no parameters). */
export function unavailableCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === "object" && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_CODES.has(code) || transientSqlState(code))) {
      return code;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Runs `write`, retrying while the database is unavailable, with doubling
 * pauses (50 ms → 1 s) until `budgetMs` has passed; any other error, or the
 * last unavailable one, is thrown. For writes that must not be lost to a
 * blip, such as the stop path's: a cancel recorded, a stop reported, a job
 * given back. Only for guarded (idempotent) writes: a retry after a commit
 * whose acknowledgement was lost must be a no-op.
 */
export async function retryWhileUnavailable<T>(
  write: () => Promise<T>,
  budgetMs: number,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = performance.now() + budgetMs;
  for (let pause = 50; ; pause = Math.min(pause * 2, 1_000)) {
    try {
      return await write();
    } catch (err) {
      const left = deadline - performance.now();
      if (!isDatabaseUnavailable(err) || left <= 0 || signal?.aborted) throw err;
      await sleep(Math.min(pause, left), undefined, signal ? { signal } : {}).catch(() => {});
    }
  }
}
