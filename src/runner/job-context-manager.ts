import type { CancelCauseFunc, Context } from "../context/context.js";

/**
 * The live job contexts held by this instance, by job id.
 *
 * Interleavings it is built for (all on one event loop):
 * - cancel before register: the runner has claimed the job in the database
 *   but not yet registered its context. The cancel is remembered for
 *   `pendingCancelTtlMs` and aborts the context the moment it is registered.
 * - cancel after unregister: the job already finished here; the cancel is
 *   remembered like any other and expires unused.
 * Remembered cancels are bounded in time and count, because most cancels for
 * jobs not held here belong to other instances and would otherwise pile up.
 *
 * Only call `cancel` after the store's guarded transition to a terminal
 * status succeeded: a remembered cancel then always belongs to a job that
 * can never be claimed again, so it cannot abort a later attempt.
 */
export interface JobContextManager {
  /**
   * Holds `ctx` for `jobId`. Throws `JobAlreadyRegisteredError` if the id is
   * held. Returns true if a remembered cancel aborted the context at once.
   */
  register(jobId: string, ctx: Context, cancel: CancelCauseFunc): boolean;
  /** Aborts the job's context with `cause`. True if a live context was aborted by this call. */
  cancel(jobId: string, cause: unknown): boolean;
  /** Aborts every held context with `cause` (shutdown). Returns how many were live. */
  cancelAll(cause: unknown): number;
  /** Forgets the job and any cancel remembered for it. True if it was held. */
  unregister(jobId: string): boolean;
  isRunning(jobId: string): boolean;
  count(): number;
  /** The ids held here, for lease renewal and status re-checks. */
  jobIds(): string[];
  /** Cancels remembered and not yet applied (for tests and diagnostics). */
  pendingCount(): number;
}

export interface JobContextManagerOptions {
  pendingCancelTtlMs?: number;
  maxPendingCancels?: number;
  now?: () => number;
}

export class JobAlreadyRegisteredError extends Error {
  readonly code = "JOB_ALREADY_REGISTERED";
  constructor(readonly jobId: string) {
    super(`job ${jobId} already has a context registered on this instance`);
    this.name = "JobAlreadyRegisteredError";
  }
}

interface Held {
  ctx: Context;
  cancel: CancelCauseFunc;
}

interface Pending {
  cause: unknown;
  expiresAt: number;
}

export function createJobContextManager(options: JobContextManagerOptions = {}): JobContextManager {
  const ttl = options.pendingCancelTtlMs ?? 30_000;
  const maxPending = options.maxPendingCancels ?? 10_000;
  const now = options.now ?? Date.now;
  const held = new Map<string, Held>();
  // Insertion order is expiry order: every entry gets the same ttl, and a
  // re-remembered id is deleted and re-inserted at the end.
  const pending = new Map<string, Pending>();

  function purgeExpired(at: number): void {
    for (const [id, p] of pending) {
      if (p.expiresAt > at) break;
      pending.delete(id);
    }
  }

  function remember(jobId: string, cause: unknown): void {
    const at = now();
    purgeExpired(at);
    if (pending.has(jobId)) return; // first cause wins
    pending.set(jobId, { cause, expiresAt: at + ttl });
    if (pending.size > maxPending) {
      const oldest = pending.keys().next().value;
      if (oldest !== undefined) pending.delete(oldest);
    }
  }

  function abort(entry: Held, cause: unknown): boolean {
    if (entry.ctx.err !== undefined) return false;
    entry.cancel(cause);
    return true;
  }

  return {
    register(jobId, ctx, cancel) {
      if (held.has(jobId)) throw new JobAlreadyRegisteredError(jobId);
      const entry = { ctx, cancel };
      held.set(jobId, entry);
      purgeExpired(now());
      const early = pending.get(jobId);
      if (early === undefined) return false;
      pending.delete(jobId);
      return abort(entry, early.cause);
    },

    cancel(jobId, cause) {
      const entry = held.get(jobId);
      if (entry === undefined) {
        remember(jobId, cause);
        return false;
      }
      return abort(entry, cause);
    },

    cancelAll(cause) {
      let aborted = 0;
      for (const entry of held.values()) if (abort(entry, cause)) aborted++;
      return aborted;
    },

    unregister(jobId) {
      pending.delete(jobId);
      return held.delete(jobId);
    },

    isRunning: (jobId) => held.has(jobId),
    count: () => held.size,
    jobIds: () => [...held.keys()],
    pendingCount() {
      purgeExpired(now());
      return pending.size;
    },
  };
}
