import { eq } from "drizzle-orm";
import { expect } from "vitest";
import type { Db } from "../../src/db/connection.js";
import { finishExecution } from "../../src/db/execution-finishes.js";
import { startExecution } from "../../src/db/executions.js";
import { cancelJob, finishJob, timeOutJob } from "../../src/db/job-endings.js";
import { claimJobs } from "../../src/db/job-transitions.js";
import {
  getJob,
  insertJob,
  type JobWithExecutions,
  type NewExecution,
  type NewJob,
} from "../../src/db/jobs.js";
import { jobs } from "../../src/db/schema.js";
import type { JobStatus } from "../../src/vocabulary.js";

export const INSTANCE = "test-instance";

export function newJob(overrides: Partial<NewJob> = {}, keys: string[] = ["a"]): NewJob {
  const executions: NewExecution[] = keys.map((key) => ({
    key,
    provider: "demo",
    model: "demo-1",
    input: { prompt: `hello ${key}` },
  }));
  return { owner: "service:test", timeoutMs: 60_000, maxParallel: 4, executions, ...overrides };
}

export async function submit(db: Db, job: NewJob = newJob()): Promise<JobWithExecutions> {
  return (await insertJob(db, job)).job;
}

/** Claims exactly this job; fails the test if the claim picked up anything else. */
export async function claimOnly(db: Db, jobId: string): Promise<JobWithExecutions> {
  const claimed = await claimJobs(db, { instance: INSTANCE, limit: 100, leaseMs: 30_000 });
  expect(claimed.map((j) => j.id)).toEqual([jobId]);
  return claimed[0] as JobWithExecutions;
}

export async function reload(db: Db, jobId: string): Promise<JobWithExecutions> {
  const job = await getJob(db, jobId);
  if (job === undefined) throw new Error(`job ${jobId} is gone`);
  return job;
}

/**
 * A new job in `status`, reached only through the store's own transitions.
 * Two executions, so that `partial` can be reached; the job is the only
 * queued one when this returns, whatever `status` is asked for.
 */
export async function jobIn(db: Db, status: JobStatus): Promise<JobWithExecutions> {
  const job = await submit(db, newJob({}, ["a", "b"]));
  if (status === "queued") return job;
  const claimed = await claimOnly(db, job.id);
  const [a, b] = claimed.executions;
  if (a === undefined || b === undefined) throw new Error("fixture needs two executions");
  const outcomes: Partial<Record<JobStatus, ["completed" | "failed", "completed" | "failed"]>> = {
    completed: ["completed", "completed"],
    partial: ["completed", "failed"],
    failed: ["failed", "failed"],
  };
  const plan = outcomes[status];
  if (plan !== undefined) {
    for (const [execution, result] of [
      [a, plan[0]],
      [b, plan[1]],
    ] as const) {
      await startExecution(db, execution.id, INSTANCE);
      await finishExecution(
        db,
        execution.id,
        INSTANCE,
        result === "completed"
          ? { status: "completed", output: { text: "ok" } }
          : { status: "failed", error: { code: "provider_error", message: "boom" } },
      );
    }
    const finished = await finishJob(db, job.id, INSTANCE);
    expect(finished).toEqual({ ok: true, status });
  } else if (status === "cancelled") {
    expect((await cancelJob(db, job.id, { actor: "someone" })).outcome).toBe("cancelled");
  } else if (status === "timed_out") {
    expect(await timeOutJob(db, job.id, INSTANCE)).toBe(true);
  }
  const reached = await reload(db, job.id);
  expect(reached.status).toBe(status);
  return reached;
}

export async function deleteJob(db: Db, jobId: string): Promise<void> {
  await db.delete(jobs).where(eq(jobs.id, jobId));
}
