/**
 * Every job status change. Each is one `UPDATE … WHERE status IN (allowed)
 * RETURNING …` (the allowed lists come from statuses.ts), so a terminal
 * status is never overwritten and of two racing transitions exactly one wins.
 * Where a change touches executions or writes an audit event, they share
 * its transaction: the trail never records a change that did not happen.
 */
import { and, eq, inArray, isNotNull, isNull, or, type SQL, sql } from "drizzle-orm";
import { type JobStatus, jobStatusesInto } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { appendEvent } from "./events.js";
import { executionGuard, resetRunningExecutions } from "./executions.js";
import { type JobJson, type JobWithExecutions, jobFromJson, jobJsonColumns } from "./jobs.js";
import { jsonbValue, rowsOf } from "./rows.js";
import { executions, jobEvents, jobs } from "./schema.js";

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

/** What a claim asks for (see `claimJobs`). */
export interface ClaimRequest {
  instance: string;
  limit: number;
  leaseMs: number;
  /**
   * Jobs whose earlier run is still stopping on the claiming instance (a
   * lease it lost and the reaper requeued): left for another claim, so
   * no instance ever runs one job twice at once.
   */
  exclude?: string[];
  /**
   * Also start each claimed job's first executions (pending, without
   * dependencies, by position, up to its `max_parallel`) with their
   * `execution_started` events: the runner's claim, which saves each job
   * the round trip of its first start. Their ids are in `started`.
   */
  startExecutions?: boolean;
}

/**
 * queued → running for up to `limit` of the oldest queued jobs, skipping
 * those another claimer holds locked (`FOR UPDATE SKIP LOCKED`): two
 * claimers never get the same job. Sets the instance, start, deadline
 * (`timeout_ms` from now), lease and attempt; writes `claimed` events.
 */
export async function claimJobs(db: Db, claim: ClaimRequest): Promise<ClaimedJob[]> {
  if (claim.limit <= 0) return [];
  const parts = claimParts(claim, sql`${claim.limit}`);
  return claimedJobs(await rowsOf<ClaimedRow>(db, sql`with ${parts.ctes} ${parts.select}`));
}

/** A row of `claimParts`' select: a job, its executions and those the claim started. */
export type ClaimedRow = JobJson & { started: unknown };

/**
 * The claim as CTEs (`candidates`, `claimed`, `first`, `started`,
 * `claim_event`) and the select of the claimed jobs (`ClaimedRow` columns
 * `job`, `executions`, `started`), for `claimJobs` and for a statement that
 * claims along with other work (the runner's finishes: src/db/execution-finishes.ts).
 * `limit` is an SQL expression, so such a statement can size the claim by
 * what it frees.
 */
export function claimParts(claim: ClaimRequest, limit: SQL): { ctes: SQL; select: SQL } {
  // One parameter, whatever its length: the statement text stays the same, so it stays prepared.
  const exclude = claim.exclude ?? [];
  // One statement: the claim, its `claimed` events and the claimed jobs'
  // executions, in one round trip and one commit. The candidates are chosen
  // once, in a CTE (Postgres never inlines one that locks rows). As
  // `id IN (subquery)` the planner may rescan the subquery per row while the
  // UPDATE turns rows from queued to running, and each rescan finds the next
  // queued job: a claim of 1 returned 2, past RUNNER_CONCURRENCY.
  const ctes = sql`
    candidates as (
      select id from ${jobs}
      where status = 'queued'
        and id <> all (array(select value::uuid
                             from jsonb_array_elements_text(${JSON.stringify(exclude)}::jsonb)))
      order by created_at, id
      limit ${limit}
      for no key update skip locked
    ),
    claimed as (
      update ${jobs} set
        status = 'running',
        instance = ${claim.instance},
        started_at = now(),
        deadline_at = now() + ${msInterval(sql`${jobs.timeoutMs}`)},
        lease_expires_at = now() + ${msInterval(claim.leaseMs)},
        attempt = ${jobs.attempt} + 1
      where ${jobs.id} = any(array(select id from candidates)) and ${jobGuard("running")}
      returning ${jobs}.*
    ),
    first as (
      select f.id from claimed c cross join lateral (
        select x.id from ${executions} x
        where ${claim.startExecutions === true}
          and x.job_id = c.id and x.status = 'pending' and x.depends_on = '[]'::jsonb
        order by x.position
        limit c.max_parallel
      ) f
    ),
    started as (
      update ${executions} set status = 'running', started_at = now()
      where ${executions.id} = any(array(select id from first)) and ${executionGuard("running")}
      returning ${executions.id}, ${executions.jobId}, ${executions.key},
                ${executions.provider}, ${executions.position}, ${executions.startedAt}
    ),
    claim_event as (
      -- In the trail's order: each job's claim, then its starts by position.
      insert into ${jobEvents} (job_id, type, actor, data)
      select job_id, type, ${claim.instance}, data from (
        select id as job_id, 'claimed' as type, jsonb_build_object('attempt', attempt) as data,
               -1 as position
        from claimed
        union all
        select job_id, 'execution_started', jsonb_build_object('key', key, 'provider', provider),
               position
        from started
      ) t order by job_id, position
    )`;
  const select = sql`
    select ${jobJsonColumns("c")}, coalesce(s.started, '[]'::jsonb) as started
    from claimed c left join (
      select job_id, jsonb_agg(jsonb_build_array(id, started_at)) as started
      from started group by job_id
    ) s on s.job_id = c.id`;
  return { ctes, select };
}

/** The claimed jobs of `claimParts`' rows, oldest first. */
export function claimedJobs(rows: ClaimedRow[]): ClaimedJob[] {
  const claimed = rows.map((row) => {
    // The executions were read as the statement began: mark those it started.
    const job = jobFromJson(row);
    const started = new Set<string>();
    for (const [id, at] of jsonbValue(row.started) as [string, string][]) {
      const exec = job.executions.find((e) => e.id === id);
      if (exec === undefined) continue;
      exec.status = "running";
      exec.startedAt = new Date(at);
      started.add(id);
    }
    return { ...job, started };
  });
  return claimed.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

/** A claimed job; `started` holds the executions its claim started (`startExecutions`). */
export type ClaimedJob = JobWithExecutions & { started: ReadonlySet<string> };

/** Who may move a running job on: its holder, or a reaper once the lease lapsed. */
export type EndGuard = { holder: string } | { lapsedLease: true };

export function holds(guard: EndGuard): SQL {
  return "holder" in guard
    ? (and(eq(jobs.status, "running"), eq(jobs.instance, guard.holder)) as SQL)
    : (and(eq(jobs.status, "running"), sql`${jobs.leaseExpiresAt} < now()`) as SQL);
}

/**
 * running → queued: the job's runner died or shut down before it finished.
 * Only the holder (`instance`) can requeue, or a reaper once the lease lapsed
 * (`guard`); its running executions go back to pending, their partial results
 * dropped, to run again from the start.
 */
export async function requeueJob(
  db: Db,
  jobId: string,
  requeue: {
    /** The actor; also the holder the update requires unless `guard` says otherwise. */
    instance: string;
    cause: string;
    /** False for a shutdown: the claim is given back, so it does not count towards MAX_ATTEMPTS. */
    countAttempt?: boolean;
    guard?: EndGuard;
    data?: Record<string, unknown>;
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
      .where(
        and(
          eq(jobs.id, jobId),
          holds(requeue.guard ?? { holder: requeue.instance }),
          jobGuard("queued"),
        ),
      )
      .returning({ attempt: jobs.attempt });
    if (row === undefined) return false;
    await resetRunningExecutions(tx, jobId);
    await appendEvent(tx, {
      jobId,
      type: "requeued",
      actor: requeue.instance,
      data: { cause: requeue.cause, attempt: row.attempt, ...requeue.data },
    });
    return true;
  });
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
