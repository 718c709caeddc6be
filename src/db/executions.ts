import { and, asc, eq, inArray, isNull, type SQL, sql } from "drizzle-orm";
import { type ExecutionStatus, executionStatusesInto } from "../vocabulary.js";
import type { Db } from "./connection.js";
import type { JobEventType } from "./events.js";
import { storableJson } from "./json.js";
import { rowAs, rowsOf } from "./rows.js";
import {
  type ErrorInfo,
  type ExecutionRow,
  executions,
  jobEvents,
  jobs,
  type RemoteStopRecord,
  type UsageRecord,
} from "./schema.js";

/** The guard of every update that moves an execution to `to`. */
export function executionGuard(to: ExecutionStatus) {
  return inArray(executions.status, executionStatusesInto(to));
}

/**
 * True while the execution's job is running and held by `instance`. Guards
 * every write a runner makes, so a runner that lost its lease (its job
 * requeued and claimed elsewhere) can no longer change the job's executions.
 */
export function heldBy(instance: string) {
  return sql`exists (select 1 from ${jobs} where ${jobs.id} = ${executions.jobId} and ${jobs.status} = 'running' and ${jobs.instance} = ${instance})`;
}

export function listExecutions(db: Db, jobIds: string[]): Promise<ExecutionRow[]> {
  if (jobIds.length === 0) return Promise.resolve([]);
  return db
    .select()
    .from(executions)
    .where(inArray(executions.jobId, jobIds))
    .orderBy(asc(executions.jobId), asc(executions.position));
}

/**
 * pending → running, with its `execution_started` event, in one statement
 * (the event exists exactly when the start does). Undefined if the
 * execution was not pending (cancelled, say) or its job is no longer
 * running on `instance`.
 */
export async function startExecution(
  db: Db,
  id: string,
  instance: string,
): Promise<ExecutionRow | undefined> {
  return (await startExecutions(db, [id], instance)).get(id);
}

/** `startExecution` for many executions in one statement: the started ones, by id. */
export async function startExecutions(
  db: Db,
  ids: string[],
  instance: string,
): Promise<Map<string, ExecutionRow>> {
  return withEvents(
    db,
    sql`update ${executions} set status = 'running', started_at = now()
        where ${executions.id} = any(array(select value::uuid from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)))
          and ${and(executionGuard("running"), heldBy(instance))}`,
    {
      type: "execution_started",
      actor: instance,
      data: sql`jsonb_build_object('key', key, 'provider', provider)`,
    },
  );
}

/**
 * Runs `update` (an UPDATE of executions, without RETURNING) and appends
 * `event` to the trail of each row it changed, in one statement: one round
 * trip and one commit for all. The changed rows, by id.
 */
async function withEvents(
  db: Db,
  update: SQL,
  /** `data` is evaluated over each changed row. */
  event: { type: JobEventType; actor: string; data: SQL },
): Promise<Map<string, ExecutionRow>> {
  const raws = await rowsOf<Record<string, unknown>>(
    db,
    sql`with changed as (${update} returning ${executions}.*),
        event as (
          insert into ${jobEvents} (job_id, type, actor, data)
          select job_id, ${event.type}, ${event.actor}, ${event.data} from changed
        )
        select * from changed`,
  );
  const rows = raws.map((raw) => rowAs(executions, raw));
  return new Map(rows.map((r) => [r.id, r]));
}

/** pending → skipped, because a dependency did not complete. */
export async function skipExecution(
  db: Db,
  id: string,
  instance: string,
  error: ErrorInfo,
): Promise<ExecutionRow | undefined> {
  const [row] = await db
    .update(executions)
    .set({ status: "skipped", finishedAt: sql`now()`, error })
    .where(and(eq(executions.id, id), executionGuard("skipped"), heldBy(instance)))
    .returning();
  return row;
}

/**
 * pending | running → cancelled for every active execution of a job, as part
 * of the job's own cancel or timeout (call it in that transition's
 * transaction). Returns how many it stopped.
 */
export async function cancelActiveExecutions(
  db: Db,
  jobId: string,
  error: ErrorInfo,
): Promise<number> {
  const rows = await db
    .update(executions)
    .set({ status: "cancelled", finishedAt: sql`now()`, error })
    .where(and(eq(executions.jobId, jobId), executionGuard("cancelled")))
    .returning({ id: executions.id });
  return rows.length;
}

/**
 * running → pending for a requeued job's executions: they run again from the
 * start, their partial results dropped. Completed ones are kept.
 */
export async function resetRunningExecutions(db: Db, jobId: string): Promise<void> {
  await db
    .update(executions)
    .set({ status: "pending", startedAt: null, output: null, partial: false, error: null })
    .where(and(eq(executions.jobId, jobId), executionGuard("pending")));
}

/**
 * Keeps the output a cancelled execution had received (`partial: true`).
 * Only on a cancelled execution with no output yet: it never changes a status.
 */
export async function recordPartialOutput(db: Db, id: string, output: unknown): Promise<boolean> {
  const rows = await db
    .update(executions)
    .set({ output: storableJson(output), partial: true })
    .where(
      and(eq(executions.id, id), eq(executions.status, "cancelled"), isNull(executions.output)),
    )
    .returning({ id: executions.id });
  return rows.length === 1;
}

/** Records the provider's own id for the work (a remote queue's job id), while the job is held here. */
export async function setRemoteId(
  db: Db,
  id: string,
  instance: string,
  remoteId: string,
): Promise<void> {
  await db
    .update(executions)
    .set({ remoteId })
    .where(and(eq(executions.id, id), heldBy(instance)));
}

/**
 * Records how a remote-queue execution's stop went (SPEC.md section 3,
 * `remote_stop`). Written after the execution ended, by whichever run sent
 * the cancel: guarded by the execution alone, since its status is final by
 * then. Returns the execution's status, or undefined if it does not exist.
 */
export async function setRemoteStop(
  db: Db,
  id: string,
  remoteStop: RemoteStopRecord,
  usage?: UsageRecord,
): Promise<string | undefined> {
  const [row] = await db
    .update(executions)
    .set({ remoteStop, ...(usage === undefined ? {} : { usage }) })
    .where(eq(executions.id, id))
    .returning({ status: executions.status });
  return row?.status;
}

/**
 * Records an execution's GPU time once it is known: when it ended, or for a
 * remote-queue kind stopped by a cancel, when the provider confirmed the
 * stop (which may be after the job ended). Guarded by the execution alone.
 */
export async function setUsage(db: Db, id: string, usage: UsageRecord): Promise<void> {
  await db.update(executions).set({ usage }).where(eq(executions.id, id));
}

/** The execution's latest structured progress report. */
export async function setProgress(db: Db, id: string, progress: unknown): Promise<void> {
  await db
    .update(executions)
    .set({ progress: storableJson(progress) })
    .where(eq(executions.id, id));
}

/** When nvidia-smi showed the execution's GPU memory freed (`gpu_check`); its status, for the feed. */
export async function setGpuReleased(db: Db, id: string, at: Date) {
  const [row] = await db
    .update(executions)
    .set({ gpuReleasedAt: at })
    .where(eq(executions.id, id))
    .returning({ status: executions.status });
  return row?.status;
}
