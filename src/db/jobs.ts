import { randomUUID } from "node:crypto";
import { and, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { JobStatus } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { listExecutions } from "./executions.js";
import {
  IdempotencyConflictError,
  insertIdempotencyKey,
  loadIdempotentJobId,
} from "./idempotency.js";
import { storableJson } from "./json.js";
import { jsonbValue, rowAs, rowsOf } from "./rows.js";
import { type ExecutionRow, executions, type JobRow, jobEvents, jobs } from "./schema.js";

export type JobWithExecutions = JobRow & { executions: ExecutionRow[] };

export interface NewExecution {
  key: string;
  provider: string;
  model: string;
  input: unknown;
  dependsOn?: string[];
  timeoutMs?: number | null;
  retries?: number;
}

export interface NewJob {
  owner: string;
  timeoutMs: number;
  maxParallel: number;
  metadata?: Record<string, unknown>;
  executions: NewExecution[];
}

export interface Idempotency {
  principal: string;
  key: string;
  /** A hash of the request body: the same key with another body is a conflict. */
  requestHash: string;
}

/** Thrown inside the transaction to roll it back when the key was taken meanwhile. */
class KeyTaken extends Error {}

/**
 * Inserts a queued job, its executions, its `submitted` event and its
 * idempotency key in one transaction. With a key already used by the same
 * principal, returns that job (`created: false`) and inserts nothing; with the
 * same key but another body, throws `IdempotencyConflictError`.
 */
export async function insertJob(
  db: Db,
  job: NewJob,
  options: { actor?: string; idempotency?: Idempotency } = {},
): Promise<{ job: JobWithExecutions; created: boolean }> {
  const idem = options.idempotency;
  if (idem !== undefined) {
    const existing = await findIdempotent(db, idem);
    if (existing !== undefined) return { job: existing, created: false };
  }
  const id = randomUUID();
  const insert = insertStatement(id, job, options.actor ?? job.owner);
  if (idem === undefined) return { job: await inserted(db, insert), created: true };
  try {
    const created = await db.transaction(async (tx) => {
      const row = await inserted(tx, insert);
      // Last, so a concurrent submit with the same key waits on it and then
      // finds it taken; ours rolls back whole.
      if (!(await insertIdempotencyKey(tx, idem, id))) throw new KeyTaken();
      return row;
    });
    return { job: created, created: true };
  } catch (err) {
    if (!(err instanceof KeyTaken)) throw err;
    const existing = await findIdempotent(db, idem);
    if (existing === undefined) throw err;
    return { job: existing, created: false };
  }
}

/**
 * The job, its executions and its `submitted` event in one statement (one
 * round trip, and one commit outside a transaction), answering the rows it
 * made, so nothing is read back.
 */
function insertStatement(id: string, job: NewJob, actor: string): SQL {
  const rows = job.executions.map((e, position) => ({
    id: randomUUID(),
    job_id: id,
    position,
    key: e.key,
    provider: e.provider,
    model: e.model,
    input: storableJson(e.input),
    depends_on: e.dependsOn ?? [],
    timeout_ms: e.timeoutMs ?? null,
    retries: e.retries ?? 0,
  }));
  return sql`
    with job as (
      insert into ${jobs} (id, owner, timeout_ms, max_parallel, metadata)
      values (${id}, ${job.owner}, ${job.timeoutMs}, ${job.maxParallel},
              ${JSON.stringify(storableJson(job.metadata ?? {}))}::jsonb)
      returning *
    ),
    execs as (
      insert into ${executions}
        (id, job_id, position, key, provider, model, input, depends_on, timeout_ms, retries)
      select x.id, x.job_id, x.position, x.key, x.provider, x.model, x.input, x.depends_on,
             x.timeout_ms, x.retries
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(
        id uuid, job_id uuid, position int, key text, provider text, model text, input jsonb,
        depends_on jsonb, timeout_ms int, retries int)
      returning *
    ),
    event as (
      insert into ${jobEvents} (job_id, type, actor, data)
      values (${id}, 'submitted', ${actor},
              ${JSON.stringify({ executions: job.executions.length })}::jsonb)
    )
    select (select to_jsonb(job) from job) as job,
           (select jsonb_agg(to_jsonb(execs) order by execs.position) from execs) as executions`;
}

async function inserted(db: Db, statement: SQL): Promise<JobWithExecutions> {
  const [row] = await rowsOf<JobJson>(db, statement);
  if (row === undefined) throw new Error("the job's insert answered no row");
  return jobFromJson(row);
}

/** A job with its executions as one statement answers them: `to_jsonb` of each row. */
export interface JobJson {
  job: unknown;
  executions: unknown;
}

/** The `JobJson` columns of a query over job rows named `alias` (a constant, never input). */
export function jobJsonColumns(alias: "j" | "c"): SQL {
  const row = sql.raw(alias);
  return sql`to_jsonb(${row}) as job,
    (select coalesce(jsonb_agg(to_jsonb(e) order by e.position), '[]'::jsonb)
     from ${executions} e where e.job_id = ${row}.id) as executions`;
}

export function jobFromJson(row: JobJson): JobWithExecutions {
  const execs = jsonbValue(row.executions) as Record<string, unknown>[];
  return {
    ...rowAs(jobs, jsonbValue(row.job) as Record<string, unknown>),
    executions: execs.map((e) => rowAs(executions, e)),
  };
}

async function findIdempotent(db: Db, idem: Idempotency): Promise<JobWithExecutions | undefined> {
  const found = await loadIdempotentJobId(db, idem.principal, idem.key);
  if (found === undefined) return undefined;
  if (found.requestHash !== idem.requestHash) throw new IdempotencyConflictError(idem.key);
  return getJob(db, found.jobId);
}

/** The job with its executions: one prepared statement, one round trip. */
export async function getJob(db: Db, id: string): Promise<JobWithExecutions | undefined> {
  const [row] = await rowsOf<JobJson>(
    db,
    sql`select ${jobJsonColumns("j")} from ${jobs} j where j.id = ${id}`,
  );
  return row === undefined ? undefined : jobFromJson(row);
}

/** Attaches each job's executions (one query for all). */
export async function withExecutions(db: Db, rows: JobRow[]): Promise<JobWithExecutions[]> {
  const all = await listExecutions(
    db,
    rows.map((r) => r.id),
  );
  const byJob = new Map<string, ExecutionRow[]>();
  for (const e of all) {
    const list = byJob.get(e.jobId);
    if (list === undefined) byJob.set(e.jobId, [e]);
    else list.push(e);
  }
  return rows.map((r) => ({ ...r, executions: byJob.get(r.id) ?? [] }));
}

export interface JobCursor {
  createdAt: Date;
  id: string;
}

export interface ListJobsQuery {
  /** Only this owner's jobs; undefined lists every job (admins). */
  owner?: string;
  status?: JobStatus;
  limit: number;
  /** The last job of the previous page. */
  after?: JobCursor;
}

/** Newest first; `nextCursor` is set when another page may follow. */
export async function listJobs(
  db: Db,
  query: ListJobsQuery,
): Promise<{ jobs: JobWithExecutions[]; nextCursor: JobCursor | null }> {
  const conditions: SQL[] = [];
  if (query.owner !== undefined) conditions.push(eq(jobs.owner, query.owner));
  if (query.status !== undefined) conditions.push(eq(jobs.status, query.status));
  if (query.after !== undefined) {
    // An ISO string with a cast: a Date bound in raw SQL is not serialised alike by both drivers.
    const createdAt = query.after.createdAt.toISOString();
    conditions.push(
      sql`(${jobs.createdAt}, ${jobs.id}) < (${createdAt}::timestamptz, ${query.after.id}::uuid)`,
    );
  }
  const rows = await db
    .select()
    .from(jobs)
    .where(and(...conditions))
    .orderBy(desc(jobs.createdAt), desc(jobs.id))
    .limit(query.limit + 1);
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  const nextCursor =
    rows.length > query.limit && last !== undefined
      ? { createdAt: last.createdAt, id: last.id }
      : null;
  return { jobs: await withExecutions(db, page), nextCursor };
}

/** Only a job's owner: what authorizing a cancel needs. */
export async function getJobOwner(
  db: Db,
  id: string,
): Promise<{ id: string; owner: string } | undefined> {
  const [row] = await db
    .select({ id: jobs.id, owner: jobs.owner })
    .from(jobs)
    .where(eq(jobs.id, id));
  return row;
}

/** When the job's runner reported every execution stopped; null while not yet (or never). */
export async function getStoppedAt(db: Db, id: string): Promise<Date | null> {
  const [row] = await db.select({ stoppedAt: jobs.stoppedAt }).from(jobs).where(eq(jobs.id, id));
  return row?.stoppedAt ?? null;
}

/**
 * Each queued job's place in the queue (SPEC.md section 3, `queue_position`):
 * 1 + the queued jobs the runners will claim before it, in the claim's own
 * order (oldest `created_at`, then id). Jobs not queued are left out. The
 * outer columns are spelled out: drizzle writes a lone table's columns
 * unqualified, which inside the subquery would mean its own `q`.
 */
export async function queuePositions(db: Db, ids: string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({
      id: jobs.id,
      position: sql<number>`(select count(*)::int + 1 from ${jobs} q where q.status = 'queued' and (q.created_at, q.id) < ("jobs"."created_at", "jobs"."id"))`,
    })
    .from(jobs)
    .where(and(inArray(jobs.id, ids), eq(jobs.status, "queued")));
  return new Map(rows.map((r) => [r.id, Number(r.position)]));
}

/** The jobs with their `queuePosition` (null unless queued), for the job view. */
export async function withQueuePositions<T extends JobRow>(
  db: Db,
  list: T[],
): Promise<Array<T & { queuePosition: number | null }>> {
  const queued = list.filter((j) => j.status === "queued").map((j) => j.id);
  const positions = await queuePositions(db, queued);
  return list.map((j) => ({ ...j, queuePosition: positions.get(j.id) ?? null }));
}
