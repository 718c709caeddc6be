import { and, asc, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "./connection.js";
import { appendEvent } from "./events.js";
import { cancelActiveExecutions, resetRunningExecutions } from "./executions.js";
import { cancelToStop, UNCLAIMED } from "./job-transitions.js";
import { jobs } from "./schema.js";

export interface Reaped {
  requeued: string[];
  failed: string[];
  /** Cancelled jobs whose holder died before reporting the stop: marked stopped now. */
  stopped: string[];
}

/**
 * Jobs whose runner stopped renewing their lease (it died, or lost the
 * database): requeued with cause `runner_lost`, or failed with error
 * `runner_lost` once MAX_ATTEMPTS claims were spent. Running executions go
 * back to pending (or are cancelled with the job). Any instance may reap:
 * `SKIP LOCKED` keeps two reapers off the same job, and every update re-checks
 * the lapsed lease, so a renewal that lands first wins.
 */
export async function reapExpiredLeases(
  db: Db,
  reap: {
    actor: string;
    maxAttempts: number;
    limit?: number;
    /**
     * Leases that lapsed in this span (database clock) lapsed because the
     * database was unreachable, not because their runner died: their jobs are
     * requeued without spending an attempt (SPEC.md section 5: an outage the
     * instance survived costs no job an attempt).
     */
    forgive?: ((now: Date) => OutageSpan | undefined) | undefined;
  },
): Promise<Reaped> {
  return db.transaction(async (tx) => {
    const forgive = reap.forgive?.(await databaseNow(tx));
    const lapsed = and(eq(jobs.status, "running"), sql`${jobs.leaseExpiresAt} < now()`);
    const expired = await tx
      .select({
        id: jobs.id,
        attempt: jobs.attempt,
        instance: jobs.instance,
        leaseExpiresAt: jobs.leaseExpiresAt,
      })
      .from(jobs)
      .where(lapsed)
      .orderBy(asc(jobs.leaseExpiresAt))
      .limit(reap.limit ?? 100)
      .for("update", { skipLocked: true });
    const reaped: Reaped = { requeued: [], failed: [], stopped: [] };
    for (const job of expired) {
      const lost = {
        code: "runner_lost",
        message: `runner ${job.instance ?? "?"} stopped renewing the job's lease`,
      };
      const forgiven = within(job.leaseExpiresAt, forgive);
      if (job.attempt >= reap.maxAttempts && !forgiven) {
        const [row] = await tx
          .update(jobs)
          .set({ status: "failed", finishedAt: sql`now()`, leaseExpiresAt: null, error: lost })
          .where(and(eq(jobs.id, job.id), lapsed))
          .returning({ id: jobs.id });
        if (row === undefined) continue;
        await cancelActiveExecutions(tx, job.id, lost);
        await appendEvent(tx, {
          jobId: job.id,
          type: "finished",
          actor: reap.actor,
          data: {
            status: "failed",
            error: "runner_lost",
            attempt: job.attempt,
            lost_instance: job.instance,
          },
        });
        reaped.failed.push(job.id);
        continue;
      }
      const [row] = await tx
        .update(jobs)
        .set({
          ...UNCLAIMED,
          ...(forgiven ? { attempt: sql`greatest(${jobs.attempt} - 1, 0)` } : {}),
        })
        .where(and(eq(jobs.id, job.id), lapsed))
        .returning({ attempt: jobs.attempt });
      if (row === undefined) continue;
      await resetRunningExecutions(tx, job.id);
      await appendEvent(tx, {
        jobId: job.id,
        type: "requeued",
        actor: reap.actor,
        data: {
          cause: forgiven ? "database_outage" : "runner_lost",
          attempt: row.attempt,
          lost_instance: job.instance,
        },
      });
      reaped.requeued.push(job.id);
    }
    reaped.stopped = await markLostStops(tx, reap.actor, reap.limit ?? 100);
    return reaped;
  });
}

/** A span of database time, both ends included. */
export interface OutageSpan {
  from: Date;
  to: Date;
}

async function databaseNow(tx: Db): Promise<Date> {
  const result = await tx.execute(sql`select now() as now`);
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Array<{
    now: Date | string;
  }>;
  const now = rows[0]?.now;
  if (now === undefined) throw new Error("select now() returned no row");
  return new Date(now);
}

function within(at: Date | null, span: OutageSpan | undefined): boolean {
  return at !== null && span !== undefined && at >= span.from && at <= span.to;
}

/**
 * What one instance's reaper saw of the database, turned into the span of
 * lapses to forgive. `failed()` after a reap that could not reach the
 * database; `spanAt(now)` in each reap that does, with the database's `now()`.
 * After an outage the span runs from the last good contact before it to
 * `graceMs` after the first good contact after it: long enough for the
 * holders, if alive, to renew or give their jobs back first.
 */
export function createOutageMemory(graceMs: number) {
  let lastGood: Date | undefined;
  let failing = false;
  let downFrom: Date | undefined;
  let span: OutageSpan | undefined;
  return {
    failed(): void {
      if (failing) return;
      failing = true;
      downFrom = lastGood;
    },
    /** The span to forgive in a reap running at `now` (database clock), if any. */
    spanAt(now: Date): OutageSpan | undefined {
      if (failing) {
        failing = false;
        span = { from: downFrom ?? new Date(0), to: new Date(now.getTime() + graceMs) };
      }
      lastGood = now;
      if (span !== undefined && now > span.to) span = undefined;
      return span;
    },
  };
}

/**
 * A cancelled job's holder keeps its lease until it reports the stop; if the
 * lease lapsed first, the holder died (or was cut off, and fenced itself by
 * the lapse), so the work has stopped: record it now. `cancel_to_stop_ms` is
 * then an upper bound, and the event says why.
 */
async function markLostStops(tx: Db, actor: string, limit: number): Promise<string[]> {
  const lapsed = and(
    eq(jobs.status, "cancelled"),
    isNull(jobs.stoppedAt),
    sql`${jobs.leaseExpiresAt} < now()`,
  );
  const lost = await tx
    .select({ id: jobs.id })
    .from(jobs)
    .where(lapsed)
    .orderBy(asc(jobs.leaseExpiresAt))
    .limit(limit)
    .for("update", { skipLocked: true });
  const stopped: string[] = [];
  for (const { id } of lost) {
    const [row] = await tx
      .update(jobs)
      .set({ stoppedAt: sql`now()`, leaseExpiresAt: null })
      .where(and(eq(jobs.id, id), lapsed))
      .returning({
        stoppedAt: jobs.stoppedAt,
        cancelledAt: jobs.cancelledAt,
        instance: jobs.instance,
      });
    if (row?.stoppedAt == null) continue;
    await appendEvent(tx, {
      jobId: id,
      type: "stopped",
      actor,
      data: {
        cancel_to_stop_ms: cancelToStop({ stoppedAt: row.stoppedAt, cancelledAt: row.cancelledAt }),
        runner_lost: true,
        lost_instance: row.instance,
      },
    });
    stopped.push(id);
  }
  return stopped;
}
