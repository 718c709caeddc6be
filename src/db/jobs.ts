import { randomUUID } from "node:crypto";
import { and, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { JobStatus } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { appendEvent } from "./events.js";
import { listExecutions } from "./executions.js";
import {
  IdempotencyConflictError,
  insertIdempotencyKey,
  loadIdempotentJobId,
} from "./idempotency.js";
import { storableJson } from "./json.js";
import { type ExecutionRow, executions, type JobRow, jobs } from "./schema.js";

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
  try {
    await db.transaction(async (tx) => {
      await tx.insert(jobs).values({
        id,
        owner: job.owner,
        timeoutMs: job.timeoutMs,
        maxParallel: job.maxParallel,
        metadata: storableJson(job.metadata ?? {}),
      });
      await tx.insert(executions).values(
        job.executions.map((e, position) => ({
          id: randomUUID(),
          jobId: id,
          position,
          key: e.key,
          provider: e.provider,
          model: e.model,
          input: storableJson(e.input),
          dependsOn: e.dependsOn ?? [],
          timeoutMs: e.timeoutMs ?? null,
          retries: e.retries ?? 0,
        })),
      );
      await appendEvent(tx, {
        jobId: id,
        type: "submitted",
        actor: options.actor ?? job.owner,
        data: { executions: job.executions.length },
      });
      // Last, so a concurrent submit with the same key waits on it and then
      // finds it taken; ours rolls back whole.
      if (idem !== undefined && !(await insertIdempotencyKey(tx, idem, id))) throw new KeyTaken();
    });
  } catch (err) {
    if (!(err instanceof KeyTaken) || idem === undefined) throw err;
    const existing = await findIdempotent(db, idem);
    if (existing === undefined) throw err;
    return { job: existing, created: false };
  }
  const created = await getJob(db, id);
  if (created === undefined) throw new Error(`job ${id} vanished after insert`);
  return { job: created, created: true };
}

async function findIdempotent(db: Db, idem: Idempotency): Promise<JobWithExecutions | undefined> {
  const found = await loadIdempotentJobId(db, idem.principal, idem.key);
  if (found === undefined) return undefined;
  if (found.requestHash !== idem.requestHash) throw new IdempotencyConflictError(idem.key);
  return getJob(db, found.jobId);
}

export async function getJob(db: Db, id: string): Promise<JobWithExecutions | undefined> {
  const [row] = await db.select().from(jobs).where(eq(jobs.id, id));
  if (row === undefined) return undefined;
  return { ...row, executions: await listExecutions(db, [id]) };
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
