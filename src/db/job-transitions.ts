/**
 * Every job status change. Each is one `UPDATE … WHERE status IN (allowed)
 * RETURNING …` (the allowed lists come from statuses.ts), so a terminal
 * status is never overwritten and of two racing transitions exactly one wins.
 * Where a change touches executions or writes an audit event, they share
 * its transaction: the trail never records a change that did not happen.
 */
import { and, asc, eq, inArray, isNotNull, isNull, notInArray, or, sql } from "drizzle-orm";
import type { Db } from "./connection.js";
import { appendEvent, appendEvents } from "./events.js";
import { cancelActiveExecutions, resetRunningExecutions } from "./executions.js";
import { type JobWithExecutions, withExecutions } from "./jobs.js";
import { type ErrorInfo, executions, type JobRow, jobs } from "./schema.js";
import { type JobStatus, jobStatusesInto } from "./statuses.js";

function jobGuard(to: JobStatus) {
  return inArray(jobs.status, jobStatusesInto(to));
}

/** A job back in the queue: no holder, no start, deadline or lease (requeue and the reaper). */
export const UNCLAIMED = {
  status: "queued",
  instance: null,
  startedAt: null,
  deadlineAt: null,
  leaseExpiresAt: null,
} as const;

const msInterval = (ms: unknown) => sql`(${ms} * interval '1 millisecond')`;

/**
 * Locks the job's row for the rest of the transaction and reads its status:
 * a concurrent transition waits, then re-checks its guard against ours.
 */
async function lockJob(tx: Db, jobId: string): Promise<{ status: JobStatus } | undefined> {
  const [row] = await tx
    .select({ status: jobs.status })
    .from(jobs)
    .where(eq(jobs.id, jobId))
    .for("update");
  return row;
}

/**
 * queued → running for up to `limit` of the oldest queued jobs, skipping
 * those another claimer holds locked (`FOR UPDATE SKIP LOCKED`): two
 * claimers never get the same job. Sets the instance, start, deadline
 * (`timeout_ms` from now), lease and attempt; writes `claimed` events.
 */
export async function claimJobs(
  db: Db,
  claim: {
    instance: string;
    limit: number;
    leaseMs: number;
    /**
     * Jobs whose earlier run is still stopping on the claiming instance (a
     * lease it lost and the reaper requeued): left for another claim, so
     * no instance ever runs one job twice at once.
     */
    exclude?: string[];
  },
): Promise<JobWithExecutions[]> {
  if (claim.limit <= 0) return [];
  const exclude = claim.exclude ?? [];
  const claimed = await db.transaction(async (tx) => {
    // The candidates are chosen once, in a CTE (Postgres never inlines one that
    // locks rows). As `id IN (subquery)` the planner may rescan the subquery per
    // row while the UPDATE turns rows from queued to running, and each rescan
    // finds the next queued job: a claim of 1 returned 2, past RUNNER_CONCURRENCY.
    const candidates = tx.$with("candidates").as(
      tx
        .select({ id: jobs.id })
        .from(jobs)
        .where(
          and(
            eq(jobs.status, "queued"),
            exclude.length > 0 ? notInArray(jobs.id, exclude) : undefined,
          ),
        )
        .orderBy(asc(jobs.createdAt), asc(jobs.id))
        .limit(claim.limit)
        .for("update", { skipLocked: true }),
    );
    const rows = await tx
      .with(candidates)
      .update(jobs)
      .set({
        status: "running",
        instance: claim.instance,
        startedAt: sql`now()`,
        deadlineAt: sql`now() + ${msInterval(jobs.timeoutMs)}`,
        leaseExpiresAt: sql`now() + ${msInterval(claim.leaseMs)}`,
        attempt: sql`${jobs.attempt} + 1`,
      })
      .from(candidates)
      .where(and(eq(jobs.id, candidates.id), jobGuard("running")))
      .returning();
    await appendEvents(
      tx,
      rows.map((r) => ({
        jobId: r.id,
        type: "claimed" as const,
        actor: claim.instance,
        data: { attempt: r.attempt },
      })),
    );
    return rows;
  });
  claimed.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  return withExecutions(db, claimed);
}

export type CancelOutcome =
  | {
      outcome: "cancelled";
      previousStatus: JobStatus;
      executionsCancelled: number;
      job: JobRow;
    }
  | { outcome: "not_found" }
  | { outcome: "not_cancellable"; status: JobStatus };

/**
 * queued | running → cancelled, with its pending and running executions.
 * A queued job had no work to stop: it is marked stopped at once. A running
 * one gets `stopped_at` when its runner reports every execution settled; its
 * holder keeps the lease while it stops the work, so a holder that dies
 * before reporting is noticed (the reaper then records the stop).
 */
export async function cancelJob(
  db: Db,
  jobId: string,
  request: { actor: string; reason?: string | null },
): Promise<CancelOutcome> {
  return db.transaction(async (tx): Promise<CancelOutcome> => {
    const current = await lockJob(tx, jobId);
    if (current === undefined) return { outcome: "not_found" };
    const [job] = await tx
      .update(jobs)
      .set({
        status: "cancelled",
        cancelledAt: sql`now()`,
        cancelledBy: request.actor,
        cancelReason: request.reason ?? null,
        finishedAt: sql`now()`,
        stoppedAt: current.status === "queued" ? sql`now()` : null,
      })
      .where(and(eq(jobs.id, jobId), jobGuard("cancelled")))
      .returning();
    if (job === undefined) return { outcome: "not_cancellable", status: current.status };
    const cancelled = await cancelActiveExecutions(tx, jobId, {
      code: "cancelled",
      message: "the job was cancelled",
    });
    await appendEvent(tx, {
      jobId,
      type: "cancel_requested",
      actor: request.actor,
      data: {
        reason: request.reason ?? null,
        previous_status: current.status,
        executions_cancelled: cancelled,
      },
    });
    if (current.status === "queued") {
      await appendEvent(tx, {
        jobId,
        type: "stopped",
        actor: request.actor,
        data: { cancel_to_stop_ms: 0 },
      });
    }
    return {
      outcome: "cancelled",
      previousStatus: current.status,
      executionsCancelled: cancelled,
      job,
    };
  });
}

export type FinishOutcome =
  | { ok: true; status: "completed" | "partial" | "failed" }
  | { ok: false; reason: "not_found" | "executions_active" }
  | { ok: false; reason: "not_running"; status: JobStatus };

/**
 * running → completed | partial | failed by SPEC.md section 2: completed if
 * every execution completed, partial if some completed and some failed or
 * were skipped, failed if none completed. Refused while an execution is
 * still pending or running, and once the job left running (a cancel or a
 * timeout won the race: its status stands).
 */
export async function finishJob(db: Db, jobId: string, actor: string): Promise<FinishOutcome> {
  return db.transaction(async (tx): Promise<FinishOutcome> => {
    const current = await lockJob(tx, jobId);
    if (current === undefined) return { ok: false, reason: "not_found" };
    if (current.status !== "running") {
      return { ok: false, reason: "not_running", status: current.status };
    }
    const states = await tx
      .select({ status: executions.status })
      .from(executions)
      .where(eq(executions.jobId, jobId));
    if (states.some((s) => s.status === "pending" || s.status === "running")) {
      return { ok: false, reason: "executions_active" };
    }
    const completed = states.filter((s) => s.status === "completed").length;
    const status = completed === states.length ? "completed" : completed > 0 ? "partial" : "failed";
    const error: ErrorInfo | null =
      status === "failed"
        ? { code: "executions_failed", message: "no execution of the job completed" }
        : null;
    const [row] = await tx
      .update(jobs)
      .set({ status, finishedAt: sql`now()`, leaseExpiresAt: null, error })
      .where(and(eq(jobs.id, jobId), jobGuard(status)))
      .returning({ status: jobs.status });
    if (row === undefined) return { ok: false, reason: "not_running", status: current.status };
    await appendEvent(tx, {
      jobId,
      type: "finished",
      actor,
      data: { status, completed, executions: states.length },
    });
    return { ok: true, status };
  });
}

/**
 * running → timed_out: the job's deadline passed. Its pending and running
 * executions become cancelled with error `timed_out` (output already received
 * is kept by the runner as partial).
 */
const timedOut: ErrorInfo = { code: "timed_out", message: "the job's deadline passed" };

export async function timeOutJob(db: Db, jobId: string, actor: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(jobs)
      .set({
        status: "timed_out",
        finishedAt: sql`now()`,
        leaseExpiresAt: null,
        error: timedOut,
      })
      .where(and(eq(jobs.id, jobId), jobGuard("timed_out")))
      .returning({ id: jobs.id });
    if (row === undefined) return false;
    const stopped = await cancelActiveExecutions(tx, jobId, timedOut);
    await appendEvent(tx, {
      jobId,
      type: "timed_out",
      actor,
      data: { executions_stopped: stopped },
    });
    return true;
  });
}

/**
 * running → queued: the job's runner died or shut down before it finished.
 * Only the holder (`instance`) can requeue; its running executions go back
 * to pending, their partial results dropped, to run again from the start.
 */
export async function requeueJob(
  db: Db,
  jobId: string,
  requeue: {
    instance: string;
    cause: string;
    /** False for a shutdown: the claim is given back, so it does not count towards MAX_ATTEMPTS. */
    countAttempt?: boolean;
  },
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(jobs)
      .set({
        ...UNCLAIMED,
        ...(requeue.countAttempt === false
          ? { attempt: sql`greatest(${jobs.attempt} - 1, 0)` }
          : {}),
      })
      .where(and(eq(jobs.id, jobId), eq(jobs.instance, requeue.instance), jobGuard("queued")))
      .returning({ attempt: jobs.attempt });
    if (row === undefined) return false;
    await resetRunningExecutions(tx, jobId);
    await appendEvent(tx, {
      jobId,
      type: "requeued",
      actor: requeue.instance,
      data: { cause: requeue.cause, attempt: row.attempt },
    });
    return true;
  });
}

/**
 * The stop acknowledgement of a cancelled job: every execution has settled
 * (sockets closed, processes gone). Sets `stopped_at` once and records the
 * `stopped` event with `cancel_to_stop_ms`, both on the database clock.
 * Undefined if the job is not cancelled or was already marked stopped.
 */
export async function markStopped(
  db: Db,
  jobId: string,
  actor: string,
): Promise<{ stoppedAt: Date; cancelToStopMs: number } | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(jobs)
      .set({ stoppedAt: sql`now()`, leaseExpiresAt: null })
      .where(and(eq(jobs.id, jobId), eq(jobs.status, "cancelled"), isNull(jobs.stoppedAt)))
      .returning({ stoppedAt: jobs.stoppedAt, cancelledAt: jobs.cancelledAt });
    if (row?.stoppedAt == null) return undefined;
    const cancelToStopMs = cancelToStop({ stoppedAt: row.stoppedAt, cancelledAt: row.cancelledAt });
    await appendEvent(tx, {
      jobId,
      type: "stopped",
      actor,
      data: { cancel_to_stop_ms: cancelToStopMs },
    });
    return { stoppedAt: row.stoppedAt, cancelToStopMs };
  });
}

/** Milliseconds from a job's cancel to its recorded stop (0 when it has no cancel time). */
export function cancelToStop(row: { stoppedAt: Date; cancelledAt: Date | null }): number {
  return Math.max(0, row.stoppedAt.getTime() - (row.cancelledAt ?? row.stoppedAt).getTime());
}

/**
 * Extends the lease of every job `instance` holds among `jobIds`, in one
 * statement: running jobs, and cancelled ones whose stop it has not reported
 * yet (`stopping`). A held id missing from `running` is no longer running
 * here (cancelled, finished, or reaped by another instance).
 */
export async function renewLeases(
  db: Db,
  renewal: { instance: string; jobIds: string[]; leaseMs: number },
): Promise<{ running: string[]; stopping: string[] }> {
  if (renewal.jobIds.length === 0) return { running: [], stopping: [] };
  const rows = await db
    .update(jobs)
    .set({ leaseExpiresAt: sql`now() + ${msInterval(renewal.leaseMs)}` })
    .where(
      and(
        inArray(jobs.id, renewal.jobIds),
        eq(jobs.instance, renewal.instance),
        or(
          eq(jobs.status, "running"),
          and(eq(jobs.status, "cancelled"), isNull(jobs.stoppedAt), isNotNull(jobs.leaseExpiresAt)),
        ),
      ),
    )
    .returning({ id: jobs.id, status: jobs.status });
  return {
    running: rows.filter((r) => r.status === "running").map((r) => r.id),
    stopping: rows.filter((r) => r.status === "cancelled").map((r) => r.id),
  };
}

/** Status, holder and cancel details of some jobs, in one query. */
export function jobStatuses(db: Db, jobIds: string[]) {
  if (jobIds.length === 0) return Promise.resolve([]);
  return db
    .select({
      id: jobs.id,
      status: jobs.status,
      instance: jobs.instance,
      cancelledBy: jobs.cancelledBy,
      cancelReason: jobs.cancelReason,
    })
    .from(jobs)
    .where(inArray(jobs.id, jobIds));
}

/**
 * running → failed for a job its runner could not carry through (an internal
 * error, MAX_ATTEMPTS times over): its active executions are cancelled with
 * the same error. Only the holder can fail it this way.
 */
export async function failJob(
  db: Db,
  jobId: string,
  failure: { instance: string; error: ErrorInfo },
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(jobs)
      .set({ status: "failed", finishedAt: sql`now()`, leaseExpiresAt: null, error: failure.error })
      .where(and(eq(jobs.id, jobId), eq(jobs.instance, failure.instance), jobGuard("failed")))
      .returning({ attempt: jobs.attempt });
    if (row === undefined) return false;
    const stopped = await cancelActiveExecutions(tx, jobId, failure.error);
    await appendEvent(tx, {
      jobId,
      type: "finished",
      actor: failure.instance,
      data: {
        status: "failed",
        error: failure.error.code,
        attempt: row.attempt,
        executions_stopped: stopped,
      },
    });
    return true;
  });
}
