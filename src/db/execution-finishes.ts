/**
 * Executions finishing: running → completed | failed, each with its
 * `execution_finished` event, and, for an execution its runner says is its
 * job's last (`lastOf`), the job's own finish in the same statement: one round
 * trip and one commit where a trivial job used to need two.
 */
import { sql } from "drizzle-orm";
import type { JobStatus } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { executionGuard, heldBy } from "./executions.js";
import { ACTIVE, type FinishOutcome, finishedEventData, finishedJobs } from "./job-endings.js";
import {
  type ClaimedJob,
  type ClaimedRow,
  type ClaimRequest,
  claimedJobs,
  claimParts,
} from "./job-transitions.js";
import { storableJson } from "./json.js";
import { rowsOf } from "./rows.js";
import {
  type ErrorInfo,
  type ExecutionRow,
  executions,
  jobEvents,
  jobs,
  type UsageRecord,
} from "./schema.js";

export type ExecutionResult = (
  | { status: "completed"; output: unknown }
  | { status: "failed"; error: ErrorInfo; output?: unknown; partial?: boolean }
) & { usage?: UsageRecord };

export interface ExecutionFinish {
  id: string;
  result: ExecutionResult;
  /**
   * Its job's id when every other execution of the job has settled, as its
   * runner sees it: the job is finished too if nothing of it is active once
   * this one is.
   */
  lastOf?: string;
}

/** What a finish answers of an execution it finished: enough to announce it, never its output. */
export type FinishedExecution = Pick<ExecutionRow, "id" | "status">;

export interface FinishedExecutions {
  /** The executions finished, by id; one missing was no longer running here (a cancel got there first). */
  executions: Map<string, FinishedExecution>;
  /** For each job of a `lastOf` item: its finish's outcome (as `finishJob` answers it). */
  jobs: Map<string, FinishOutcome>;
  /**
   * With a claim: the jobs it claimed, the jobs the statement finished
   * (`released`: their slots are free) and the claim's limit as the
   * statement set it (`claim.limit` plus those).
   */
  claim?: { jobs: ClaimedJob[]; released: string[]; limit: number };
}

/**
 * running → completed | failed, with its `execution_finished` event, in one
 * statement. Undefined if the execution was no longer running (a cancel got
 * there first, and its status stands) or its job is no longer running on
 * `instance`.
 */
export async function finishExecution(
  db: Db,
  id: string,
  instance: string,
  result: ExecutionResult,
): Promise<FinishedExecution | undefined> {
  return (await finishExecutions(db, [{ id, result }], instance)).executions.get(id);
}

/**
 * Finishes many executions in one statement, each under its own guard, so
 * the set is exactly the finishes that would have succeeded one by one; the
 * jobs of `lastOf` items are finished by `finishJob`'s rule and guards (and
 * held by `instance`) in the same statement.
 *
 * Locks: the `lastOf` items' job rows are locked first, in id order, before
 * any execution row (the `cur` InitPlan in the update's filter), the order
 * a cancel takes them in (job, then executions): taking an execution first
 * and its job's row after would deadlock with it. A cancel that committed
 * meanwhile is seen: its executions are no longer running, and `cur` reads
 * the job as it is now.
 *
 * With `claim`, the statement also claims queued jobs (src/db/job-transitions.ts,
 * `claimParts`), up to `claim.limit` plus the jobs it finishes: the slots
 * those free are filled in the same commit, so the claimer never holds more
 * jobs than before, and a runner moving short jobs makes one round trip per
 * cycle instead of two. The claim's rows are queued jobs, the finish's are
 * running ones: no row is locked by both halves.
 */
export async function finishExecutions(
  db: Db,
  items: ExecutionFinish[],
  instance: string,
  claim?: ClaimRequest,
): Promise<FinishedExecutions> {
  const rows = items.map(({ id, result, lastOf }) => {
    const failed = result.status === "failed";
    return {
      id,
      last_of: lastOf ?? null,
      status: result.status,
      output: storableJson(result.output ?? null),
      partial: failed ? (result.partial ?? false) : false,
      error: failed ? storableJson(result.error) : null,
      usage: result.usage ?? null,
    };
  });
  const claiming =
    claim === undefined
      ? undefined
      : claimParts(claim, sql`${claim.limit} + (select count(*) from upd)`);
  const answered = await rowsOf<
    {
      execution_id: string | null;
      execution_status: ExecutionRow["status"] | null;
      job_id: string | null;
      current: string | null;
      active: number | null;
      finished: "completed" | "partial" | "failed" | null;
    } & { [K in keyof ClaimedRow]: ClaimedRow[K] | null }
  >(
    db,
    sql`
    with x as (
      select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        as x(id uuid, last_of uuid, status text, output jsonb, partial boolean, error jsonb,
             usage jsonb)
    ),
    cur as (
      select id, status, instance from ${jobs}
      where id = any(array(select last_of from x where last_of is not null))
      order by id for no key update
    ),
    changed as (
      update ${executions} set
        status = x.status,
        finished_at = now(),
        output = x.output,
        partial = x.partial,
        error = x.error,
        usage = coalesce(x.usage, ${executions.usage})
      from x
      where ${executions.id} = x.id
        and (select count(*) from cur) >= 0
        and ((x.status = 'completed' and ${executionGuard("completed")})
          or (x.status = 'failed' and ${executionGuard("failed")}))
        and ${heldBy(instance)}
      returning ${executions.id}, ${executions.jobId}, ${executions.key}, ${executions.position},
                ${executions.status}, ${executions.error}
    ),
    verdict as (
      -- The executions as the statement began, those it changed as they are now.
      select e.job_id,
             count(*)::int as n,
             (count(*) filter (where coalesce(c.status, e.status) in (${sql.join(ACTIVE, sql`, `)})))::int
               as active,
             (count(*) filter (where coalesce(c.status, e.status) = 'completed'))::int as done
      from ${executions} e left join changed c on c.id = e.id
      where e.job_id = any(array(select id from cur))
      group by e.job_id
    ),
    ${finishedJobs({
      guard: sql`cur.instance = ${instance} and exists (select 1 from changed where changed.job_id = cur.id)`,
      actor: instance,
      events: false,
    })},
    event as (
      -- In the trail's order: a job's executions' finishes, then its own.
      insert into ${jobEvents} (job_id, type, actor, data)
      select job_id, type, ${instance}, data from (
        select job_id, 'execution_finished' as type, position,
               jsonb_build_object('key', key, 'status', status, 'error', error->>'code') as data
        from changed
        union all
        select upd.id, 'finished', 2147483647, ${finishedEventData}
        from upd join outcome o on o.job_id = upd.id
      ) t order by job_id, position
    )${claiming === undefined ? sql`` : sql`, ${claiming.ctes}`}
    select c.id as execution_id, c.status as execution_status, null::uuid as job_id,
           null::text as current, null::int as active, null::text as finished,
           null::jsonb as job, null::jsonb as executions, null::jsonb as started
    from changed c
    union all
    select null, null, cur.id, cur.status, coalesce(o.active, 0), upd.status, null, null, null
    from cur left join outcome o on o.job_id = cur.id left join upd on upd.id = cur.id
    ${
      claiming === undefined
        ? sql``
        : sql`union all
    select null, null, null, null, null, null, k.job, k.executions, k.started
    from (${claiming.select}) k`
    }`,
  );
  const finished: FinishedExecutions = { executions: new Map(), jobs: new Map() };
  const claimedRows: ClaimedRow[] = [];
  for (const row of answered) {
    if (row.job !== null) {
      claimedRows.push({ job: row.job, executions: row.executions, started: row.started });
    } else if (row.execution_id !== null && row.execution_status !== null) {
      finished.executions.set(row.execution_id, {
        id: row.execution_id,
        status: row.execution_status,
      });
    } else if (row.job_id !== null) {
      finished.jobs.set(
        row.job_id,
        row.finished !== null
          ? { ok: true, status: row.finished }
          : row.current !== "running"
            ? { ok: false, reason: "not_running", status: row.current as JobStatus }
            : { ok: false, reason: "executions_active" },
      );
    }
  }
  if (claim !== undefined) {
    const released = [...finished.jobs].filter(([, o]) => o.ok).map(([id]) => id);
    finished.claim = {
      jobs: claimedJobs(claimedRows),
      released,
      limit: claim.limit + released.length,
    };
  }
  return finished;
}
