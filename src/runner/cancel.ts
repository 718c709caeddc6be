import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "../db/connection.js";
import { cancelJob as cancelInStore } from "../db/job-endings.js";
import { getStoppedAt } from "../db/jobs.js";
import { retryWhileUnavailable } from "../db/unavailable.js";
import { CancelCause } from "../providers/causes.js";
import type { JobStatus } from "../vocabulary.js";
import type { CancelBus } from "./bus.js";
import type { JobContextManager } from "./job-context-manager.js";
import type { JobEndings } from "./job-ended.js";
import type { StopAck, StopAcks } from "./stop-acks.js";

export type CancelResult =
  | {
      ok: true;
      jobId: string;
      previousStatus: JobStatus;
      newStatus: "cancelled";
      /** A live job context was aborted and its runner acknowledged the stop within the ack wait. */
      contextCancelled: boolean;
      executionsCancelled: number;
      cancelledAt: Date;
      /** When every execution had stopped; null if not acknowledged yet (filled in later on the job). */
      stoppedAt: Date | null;
    }
  | { ok: false; code: "not_found"; jobId: string }
  | { ok: false; code: "not_cancellable"; jobId: string; status: JobStatus };

export interface CancelServiceDeps {
  db: Db;
  manager: JobContextManager;
  bus: CancelBus;
  acks: StopAcks;
  endings: JobEndings;
  /** How long a cancel waits for the runner's stop acknowledgement (CANCEL_ACK_MS). */
  ackMs: number;
}

/** How long a cancel retries its write while the database is unavailable, before answering 503. */
const CANCEL_WRITE_RETRY_MS = 2_000;

/**
 * `cancelJob(jobId, {actor, reason})`: the guarded transition in the store
 * (queued | running → cancelled, with its executions), the abort of the job's
 * context — here if this instance holds it, through the bus otherwise — and
 * up to `ackMs` waiting for the runner's stop acknowledgement. A queued job
 * is cancelled before any work starts.
 *
 * A job held here is aborted at once, while the transition commits: the
 * sockets close without waiting for the database. This is safe because the
 * runner writes nothing about the stop until the transition has committed
 * (`CancelCause.committed`), and a refused transition means the job had
 * already ended — its terminal status stands, exactly one wins.
 */
export function createCancelService(deps: CancelServiceDeps) {
  return async function cancelJob(
    jobId: string,
    request: { actor: string; reason?: string | null },
    options: { ackMs?: number } = {},
  ): Promise<CancelResult> {
    const ackMs = options.ackMs ?? deps.ackMs;
    const waiter = deps.acks.waiter(jobId);
    let commit: (committed: boolean) => void = () => {};
    const committed = new Promise<boolean>((resolve) => {
      commit = resolve;
    });
    const cause = new CancelCause(
      "cancelled",
      request.reason ?? "cancelled",
      request.actor,
      committed,
    );
    const heldHere = deps.manager.isRunning(jobId);
    if (heldHere) {
      deps.manager.cancel(jobId, cause);
      // The store write starts on the next turn of the event loop: building its
      // statement costs tens of µs, and in a burst of cancels (a bulk cancel)
      // every job's abort would otherwise wait behind each earlier job's.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    try {
      let outcome: Awaited<ReturnType<typeof cancelInStore>>;
      try {
        // Retried through a blip (the transition is guarded, so a retry is safe); a
        // database still away after CANCEL_WRITE_RETRY_MS makes the cancel a 503
        // that says it was not recorded, and the runner gives the job back.
        outcome = await retryWhileUnavailable(
          () => cancelInStore(deps.db, jobId, request),
          CANCEL_WRITE_RETRY_MS,
        );
      } catch (err) {
        commit(false); // the runner must not wait for a transition that will never come
        throw err;
      }
      commit(outcome.outcome === "cancelled");
      if (outcome.outcome === "not_found") return { ok: false, code: "not_found", jobId };
      if (outcome.outcome === "not_cancellable") {
        return { ok: false, code: "not_cancellable", jobId, status: outcome.status };
      }
      const base = {
        ok: true as const,
        jobId,
        previousStatus: outcome.previousStatus,
        newStatus: "cancelled" as const,
        executionsCancelled: outcome.executionsCancelled,
        cancelledAt: outcome.job.cancelledAt ?? new Date(),
      };
      deps.endings.ended({ kind: "ended", jobId, status: "cancelled" });
      if (outcome.previousStatus === "queued") {
        const stoppedAt = outcome.job.stoppedAt ?? base.cancelledAt;
        deps.endings.ended({
          kind: "stopped",
          jobId,
          stop: { stoppedAt, cancelToStopMs: 0 },
          by: "queued",
          contextAborted: false,
        });
        return { ...base, contextCancelled: false, stoppedAt };
      }
      if (!heldHere) {
        // Remembered briefly if the runner here claimed the job but has not registered it yet.
        // The same cause: its commit has resolved true by now.
        deps.manager.cancel(jobId, cause);
        // The cancel is committed; if the bus fails, the holder's status check still finds it.
        await deps.bus
          .publishCancel(jobId, { actor: request.actor, reason: request.reason ?? null })
          .catch(() => {});
      }
      let ack: StopAck | null = null;
      if (ackMs > 0 && heldHere) ack = await waiter.wait(ackMs);
      else if (ackMs > 0) {
        // Held elsewhere: its ack comes over the bus, or — if that notification is
        // lost — shows as the holder's stopped_at write, whichever comes first.
        const watching = new AbortController();
        ack = await Promise.race([
          waiter.wait(ackMs),
          stoppedInStore(deps.db, jobId, ackMs, watching.signal),
        ]);
        watching.abort();
      }
      return {
        ...base,
        contextCancelled: ack?.contextAborted ?? false,
        stoppedAt: ack?.stoppedAt ?? null,
      };
    } finally {
      waiter.dispose();
    }
  };
}

export type CancelService = ReturnType<typeof createCancelService>;

/** Polls the job's stopped_at until it is written, `signal` aborts, or `ms` pass. */
async function stoppedInStore(
  db: Db,
  jobId: string,
  ms: number,
  signal: AbortSignal,
): Promise<StopAck | null> {
  const deadline = Date.now() + ms;
  while (!signal.aborted && Date.now() < deadline) {
    const stoppedAt = await getStoppedAt(db, jobId).catch(() => null);
    // Written by the holder after the cancel aborted its live context.
    if (stoppedAt !== null) return { stoppedAt, contextAborted: true };
    await sleep(Math.min(50, Math.max(0, deadline - Date.now())), undefined, { signal }).catch(
      () => {},
    );
  }
  return null;
}
