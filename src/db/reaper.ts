import { and, asc, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "./connection.js";
import { failJob, markStopped, type Stop } from "./job-endings.js";
import { requeueJob } from "./job-transitions.js";
import { rowsOf } from "./rows.js";
import { jobs } from "./schema.js";

export interface Reaped {
  requeued: string[];
  failed: string[];
  /** Cancelled jobs whose holder died before reporting the stop: marked stopped now. */
  stopped: Array<{ jobId: string } & Stop>;
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
      .for("no key update", { skipLocked: true });
    const reaped: Reaped = { requeued: [], failed: [], stopped: [] };
    for (const job of expired) {
      const lost = {
        code: "runner_lost",
        message: `runner ${job.instance ?? "?"} stopped renewing the job's lease`,
      };
      const forgiven = within(job.leaseExpiresAt, forgive);
      if (job.attempt >= reap.maxAttempts && !forgiven) {
        const failed = await failJob(tx, job.id, {
          actor: reap.actor,
          guard: { lapsedLease: true },
          error: lost,
          data: { lost_instance: job.instance },
        });
        if (failed) reaped.failed.push(job.id);
        continue;
      }
      const requeued = await requeueJob(tx, job.id, {
        instance: reap.actor,
        guard: { lapsedLease: true },
        cause: forgiven ? "database_outage" : "runner_lost",
        countAttempt: !forgiven,
        data: { lost_instance: job.instance },
      });
      if (!requeued) continue;
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
  const rows = await rowsOf<{ now: Date | string }>(tx, sql`select now() as now`);
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
 * the lapse), so the work has stopped: record it now.
 */
async function markLostStops(
  tx: Db,
  actor: string,
  limit: number,
): Promise<Array<{ jobId: string } & Stop>> {
  const lost = await tx
    .select({ id: jobs.id })
    .from(jobs)
    .where(
      and(
        eq(jobs.status, "cancelled"),
        isNull(jobs.stoppedAt),
        sql`${jobs.leaseExpiresAt} < now()`,
      ),
    )
    .orderBy(asc(jobs.leaseExpiresAt))
    .limit(limit)
    .for("no key update", { skipLocked: true });
  const stopped: Array<{ jobId: string } & Stop> = [];
  for (const { id } of lost) {
    const stop = await markStopped(tx, id, { actor, lapsedLease: true });
    if (stop !== undefined) stopped.push({ jobId: id, ...stop });
  }
  return stopped;
}
