/**
 * Every transition that ends a job, and the stop acknowledgement: one
 * guarded transition per outcome, used by the runner, the reaper and the
 * cancel alike (the reaper's guard is a parameter, never a copy). Each is one
 * transaction: the status change, its executions, its audit event and its
 * webhook outbox rows commit together or not at all, so a crash never leaves
 * an ending that nobody will be told of. The caller then sends one
 * `jobEnded` notice (src/runner/job-ended.ts) for what the result says.
 */
import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import { type JobStatus, jobStatusesInto } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { appendEvent } from "./events.js";
import { cancelActiveExecutions } from "./executions.js";
import { type EndGuard, holds } from "./job-transitions.js";
import { type ErrorInfo, executions, type JobRow, jobs } from "./schema.js";
import { enqueueJobEvent } from "./webhook-outbox.js";

function jobGuard(to: JobStatus) {
  return inArray(jobs.status, jobStatusesInto(to));
}

async function lockJob(tx: Db, jobId: string): Promise<{ status: JobStatus } | undefined> {
  const [row] = await tx
    .select({ status: jobs.status })
    .from(jobs)
    .where(eq(jobs.id, jobId))
    .for("update");
  return row;
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
    const wasQueued = current.status === "queued";
    const [job] = await tx
      .update(jobs)
      .set({
        status: "cancelled",
        cancelledAt: sql`now()`,
        cancelledBy: request.actor,
        cancelReason: request.reason ?? null,
        finishedAt: sql`now()`,
        stoppedAt: wasQueued ? sql`now()` : null,
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
    await enqueueJobEvent(tx, { jobId, owner: job.owner, type: "job.cancelled" });
    if (wasQueued) {
      await appendEvent(tx, {
        jobId,
        type: "stopped",
        actor: request.actor,
        data: { cancel_to_stop_ms: 0 },
      });
      await enqueueJobEvent(tx, {
        jobId,
        owner: job.owner,
        type: "job.stopped",
        extra: { cancel_to_stop_ms: 0 },
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
      .returning({ owner: jobs.owner });
    if (row === undefined) return { ok: false, reason: "not_running", status: current.status };
    await appendEvent(tx, {
      jobId,
      type: "finished",
      actor,
      data: { status, completed, executions: states.length },
    });
    await enqueueJobEvent(tx, { jobId, owner: row.owner, type: `job.${status}` });
    return { ok: true, status };
  });
}

const timedOut: ErrorInfo = { code: "timed_out", message: "the job's deadline passed" };

/**
 * running → timed_out: the job's deadline passed. Its pending and running
 * executions become cancelled with error `timed_out` (output already received
 * is kept by the runner as partial).
 */
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
      .returning({ owner: jobs.owner });
    if (row === undefined) return false;
    const stopped = await cancelActiveExecutions(tx, jobId, timedOut);
    await appendEvent(tx, {
      jobId,
      type: "timed_out",
      actor,
      data: { executions_stopped: stopped },
    });
    await enqueueJobEvent(tx, { jobId, owner: row.owner, type: "job.timed_out" });
    return true;
  });
}

/**
 * running → failed for a job that could not be carried through: its holder
 * failed internally MAX_ATTEMPTS times (guard `holder`), or its runner was
 * lost on the last attempt (guard `lapsedLease`, the reaper). Its active
 * executions are cancelled with the same error.
 */
export async function failJob(
  db: Db,
  jobId: string,
  failure: { actor: string; guard: EndGuard; error: ErrorInfo; data?: Record<string, unknown> },
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(jobs)
      .set({ status: "failed", finishedAt: sql`now()`, leaseExpiresAt: null, error: failure.error })
      .where(and(eq(jobs.id, jobId), jobGuard("failed"), holds(failure.guard)))
      .returning({ attempt: jobs.attempt, owner: jobs.owner });
    if (row === undefined) return false;
    const stopped = await cancelActiveExecutions(tx, jobId, failure.error);
    await appendEvent(tx, {
      jobId,
      type: "finished",
      actor: failure.actor,
      data: {
        status: "failed",
        error: failure.error.code,
        attempt: row.attempt,
        executions_stopped: stopped,
        ...failure.data,
      },
    });
    await enqueueJobEvent(tx, { jobId, owner: row.owner, type: "job.failed" });
    return true;
  });
}

export interface Stop {
  stoppedAt: Date;
  cancelToStopMs: number;
}

/**
 * The stop of a cancelled job: every execution has settled (sockets closed,
 * processes gone). Sets `stopped_at` once and records the `stopped` event
 * with `cancel_to_stop_ms`, both on the database clock. Its runner reports
 * it; the reaper records it (`lapsedLease`) for a holder whose lease lapsed
 * first: the holder died or fenced itself, so the work has stopped, and
 * `cancel_to_stop_ms` is then an upper bound. Undefined if the job is not cancelled or is already stopped.
 */
export async function markStopped(
  db: Db,
  jobId: string,
  stop: { actor: string; lapsedLease?: boolean },
): Promise<Stop | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(jobs)
      .set({ stoppedAt: sql`now()`, leaseExpiresAt: null })
      .where(
        and(
          eq(jobs.id, jobId),
          eq(jobs.status, "cancelled"),
          isNull(jobs.stoppedAt),
          stop.lapsedLease ? sql`${jobs.leaseExpiresAt} < now()` : undefined,
        ),
      )
      .returning({
        stoppedAt: jobs.stoppedAt,
        cancelledAt: jobs.cancelledAt,
        instance: jobs.instance,
        owner: jobs.owner,
      });
    if (row?.stoppedAt == null) return undefined;
    const cancelToStopMs = cancelToStop({ stoppedAt: row.stoppedAt, cancelledAt: row.cancelledAt });
    const lost = stop.lapsedLease ? { runner_lost: true, lost_instance: row.instance } : {};
    await appendEvent(tx, {
      jobId,
      type: "stopped",
      actor: stop.actor,
      data: { cancel_to_stop_ms: cancelToStopMs, ...lost },
    });
    await enqueueJobEvent(tx, {
      jobId,
      owner: row.owner,
      type: "job.stopped",
      extra: { cancel_to_stop_ms: cancelToStopMs, ...lost },
    });
    return { stoppedAt: row.stoppedAt, cancelToStopMs };
  });
}

/** Milliseconds from a job's cancel to its recorded stop (0 when it has no cancel time). */
export function cancelToStop(row: { stoppedAt: Date; cancelledAt: Date | null }): number {
  return Math.max(0, row.stoppedAt.getTime() - (row.cancelledAt ?? row.stoppedAt).getTime());
}
