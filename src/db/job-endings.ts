/**
 * Every transition that ends a job, and the stop acknowledgement: one
 * guarded transition per outcome, used by the runner, the reaper and the
 * cancel alike (the reaper's guard is a parameter, never a copy). Each is one
 * transaction: the status change, its executions, its audit event and its
 * webhook outbox rows commit together or not at all, so a crash never leaves
 * an ending that nobody will be told of. The caller then sends one
 * `jobEnded` notice (src/runner/job-ended.ts) for what the result says.
 */
import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import { ACTIVE_EXECUTION_STATUSES, type JobStatus, jobStatusesInto } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { appendEvent } from "./events.js";
import { cancelActiveExecutions, executionGuard } from "./executions.js";
import { type EndGuard, holds } from "./job-transitions.js";
import { jsonbValue, rowAs, rowsOf } from "./rows.js";
import { type ErrorInfo, executions, type JobRow, jobEvents, jobs } from "./schema.js";
import { enqueueJobEvent, outboxInsert } from "./webhook-outbox.js";

function jobGuard(to: JobStatus) {
  return inArray(jobs.status, jobStatusesInto(to));
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
  const reason = request.reason ?? null;
  // One statement (one round trip, one commit): the lock, the guarded update,
  // its executions, its events and outbox rows. `cur` locks the row first, so
  // a transition committing meanwhile is waited for and the guard is checked
  // again on the row it left. The lock is NO KEY UPDATE, the lock an UPDATE
  // itself takes, not UPDATE: an execution's start or finish inserts its
  // event in the same statement as its own row change, and the event's
  // foreign key takes KEY SHARE on the job's row; under FOR UPDATE a cancel
  // (job row, then executions) and a finishing execution (its row, then the
  // job's key) would deadlock. Every lock on a job row in src/db is taken in
  // this mode (the reaper's, the claim's, resume's) for that reason.
  const [row] = await rowsOf<{ current: JobStatus | null; job: unknown; cancelled: number }>(
    db,
    sql`
    with cur as (
      select id, status from ${jobs} where id = ${jobId} for no key update
    ),
    upd as (
      update ${jobs} set
        status = 'cancelled',
        cancelled_at = now(),
        cancelled_by = ${request.actor},
        cancel_reason = ${reason}::text,
        finished_at = now(),
        stopped_at = case when cur.status = 'queued' then now() end
      from cur
      where ${jobs.id} = cur.id and ${jobGuard("cancelled")}
      returning ${jobs}.*, cur.status as previous
    ),
    ex as (
      update ${executions} set status = 'cancelled', finished_at = now(),
        error = ${JSON.stringify(CANCELLED)}::jsonb
      where ${executions.jobId} in (select id from upd) and ${executionGuard("cancelled")}
      returning ${executions.id}
    ),
    n as (select count(*)::int as cancelled from ex),
    event as (
      insert into ${jobEvents} (job_id, type, actor, data)
      select upd.id, 'cancel_requested', ${request.actor},
             jsonb_build_object('reason', ${reason}::text, 'previous_status', upd.previous,
                                'executions_cancelled', n.cancelled)
      from upd, n
      union all
      select id, 'stopped', ${request.actor}, ${JSON.stringify(STOPPED_AT_ONCE)}::jsonb
      from upd where previous = 'queued'
    ),
    outbox as (
      ${outboxInsert(sql`
        select id as job_id, owner, 'job.cancelled' as type, '{}'::jsonb as extra from upd
        union all
        select id, owner, 'job.stopped', ${JSON.stringify(STOPPED_AT_ONCE)}::jsonb
        from upd where previous = 'queued'`)}
    )
    select (select status from cur) as current,
           (select to_jsonb(upd) from upd) as job,
           (select cancelled from n) as cancelled`,
  );
  if (row?.current == null) return { outcome: "not_found" };
  if (row.job === null) return { outcome: "not_cancellable", status: row.current };
  return {
    outcome: "cancelled",
    previousStatus: row.current,
    executionsCancelled: row.cancelled,
    job: rowAs(jobs, jsonbValue(row.job) as Record<string, unknown>),
  };
}

const CANCELLED: ErrorInfo = { code: "cancelled", message: "the job was cancelled" };

/** A queued job's cancel is its stop: nothing ran. */
const STOPPED_AT_ONCE = { cancel_to_stop_ms: 0 };

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
  return (await finishJobs(db, [jobId], actor)).get(jobId) ?? { ok: false, reason: "not_found" };
}

/**
 * `finishJob` for many jobs in one statement (one round trip, one commit),
 * each job's outcome by id (absent: not found). The jobs' rows are locked
 * first, in id order (`cur`), so a cancel committing meanwhile is seen and
 * wins; each update is guarded again on its row. A job's event and outbox
 * rows exist only if its update happened.
 */
export async function finishJobs(
  db: Db,
  jobIds: string[],
  actor: string,
): Promise<Map<string, FinishOutcome>> {
  const rows = await rowsOf<{
    id: string;
    current: JobStatus;
    active: number;
    finished: "completed" | "partial" | "failed" | null;
  }>(
    db,
    sql`
    with ids as (
      select value::uuid as id from jsonb_array_elements_text(${JSON.stringify(jobIds)}::jsonb)
    ),
    cur as (
      select id, status from ${jobs} where id = any(array(select id from ids))
      order by id for no key update
    ),
    verdict as (
      select job_id,
             count(*)::int as n,
             (count(*) filter (where status in (${sql.join(ACTIVE, sql`, `)})))::int as active,
             (count(*) filter (where status = 'completed'))::int as done
      from ${executions} where job_id = any(array(select id from ids))
      group by job_id
    ),
    ${finishedJobs({ guard: sql`true`, actor })}
    select cur.id, cur.status as current, coalesce(o.active, 0) as active, upd.status as finished
    from cur left join outcome o on o.job_id = cur.id left join upd on upd.id = cur.id`,
  );
  const outcomes = new Map<string, FinishOutcome>();
  for (const row of rows) {
    outcomes.set(
      row.id,
      row.finished !== null
        ? { ok: true, status: row.finished }
        : row.current !== "running"
          ? { ok: false, reason: "not_running", status: row.current }
          : { ok: false, reason: "executions_active" },
    );
  }
  return outcomes;
}

const NONE_COMPLETED: ErrorInfo = {
  code: "executions_failed",
  message: "no execution of the job completed",
};

/** The active execution statuses, as SQL literals for `in (…)`. */
export const ACTIVE = ACTIVE_EXECUTION_STATUSES.map((s) => sql`${s}`);

/** Where a finish may come from: the same for completed, partial and failed (SPEC.md section 2). */
const FINISH_FROM = jobStatusesInto("completed").map((s) => sql`${s}`);

/**
 * The CTEs that finish jobs, shared by `finishJobs` and the last executions'
 * finish (src/db/execution-finishes.ts): from `cur` (the jobs' rows, locked,
 * as they are now) and `verdict` (per job: executions `n`, still `active`,
 * `done`), `outcome` applies SPEC.md section 2's rule, `upd` moves each job
 * that is running, has no active execution and passes `guard`, `event` and
 * `outbox` announce it. Its trail line is written by `event` unless the
 * caller writes it in its own ordered insert (`events: false`, reading `upd`
 * joined to `outcome`).
 */
export function finishedJobs(options: { guard: SQL; actor: string; events?: boolean }): SQL {
  const event = sql`
    event as (
      insert into ${jobEvents} (job_id, type, actor, data)
      select upd.id, 'finished', ${options.actor}, ${finishedEventData}
      from upd join outcome o on o.job_id = upd.id
    ),`;
  return sql`
    outcome as (
      select job_id, n, done, active,
             case when done = n then 'completed' when done > 0 then 'partial' else 'failed' end
               as status
      from verdict
    ),
    upd as (
      update ${jobs} set
        status = o.status,
        finished_at = now(),
        lease_expires_at = null,
        error = case when o.status = 'failed' then ${JSON.stringify(NONE_COMPLETED)}::jsonb end
      from cur join outcome o on o.job_id = cur.id
      where ${jobs.id} = cur.id and cur.status = 'running' and o.active = 0 and ${options.guard}
        and ${jobs.status} in (${sql.join(FINISH_FROM, sql`, `)})
      returning ${jobs.id} as id, ${jobs.status} as status, ${jobs.owner} as owner
    ),${options.events === false ? sql`` : event}
    outbox as (
      ${outboxInsert(sql`select id as job_id, owner, 'job.' || status as type, '{}'::jsonb as extra from upd`)}
    )`;
}

/** The `finished` event's data, over `upd` joined to `outcome o`. */
export const finishedEventData = sql`jsonb_build_object('status', upd.status, 'completed', o.done, 'executions', o.n)`;

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
  // One statement: the guarded update, its event and its outbox row, with
  // cancel_to_stop_ms on the database clock from the stored (millisecond) times.
  const lapsed = stop.lapsedLease ? sql`and ${jobs.leaseExpiresAt} < now()` : sql``;
  const lost = stop.lapsedLease
    ? sql`jsonb_build_object('runner_lost', true, 'lost_instance', instance)`
    : sql`'{}'::jsonb`;
  const [row] = await rowsOf<{ stopped_at: string | Date; cancel_to_stop_ms: number }>(
    db,
    sql`
    with upd as (
      update ${jobs} set stopped_at = now(), lease_expires_at = null
      where ${jobs.id} = ${jobId} and ${jobs.status} = 'cancelled' and ${jobs.stoppedAt} is null
        ${lapsed}
      returning ${jobs.id} as id, ${jobs.owner} as owner, ${jobs.instance} as instance,
                ${jobs.stoppedAt} as stopped_at,
                greatest(0, round(extract(epoch from
                  (${jobs.stoppedAt} - coalesce(${jobs.cancelledAt}, ${jobs.stoppedAt}))) * 1000))::int
                  as cancel_to_stop_ms
    ),
    data as (
      select id, owner, jsonb_build_object('cancel_to_stop_ms', cancel_to_stop_ms) || ${lost} as extra
      from upd
    ),
    event as (
      insert into ${jobEvents} (job_id, type, actor, data)
      select id, 'stopped', ${stop.actor}, extra from data
    ),
    outbox as (
      ${outboxInsert(sql`select id as job_id, owner, 'job.stopped' as type, extra from data`)}
    )
    select stopped_at, cancel_to_stop_ms from upd`,
  );
  if (row === undefined) return undefined;
  return {
    stoppedAt: jobs.stoppedAt.mapFromDriverValue(row.stopped_at as string) as Date,
    cancelToStopMs: row.cancel_to_stop_ms,
  };
}
