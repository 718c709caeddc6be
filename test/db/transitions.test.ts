import { describe, expect, it } from "vitest";
import type { Db } from "../../src/db/connection.js";
import { finishExecution } from "../../src/db/execution-finishes.js";
import { skipExecution, startExecution } from "../../src/db/executions.js";
import { cancelJob, finishJob, timeOutJob } from "../../src/db/job-endings.js";
import { claimJobs, requeueJob } from "../../src/db/job-transitions.js";
import type { JobWithExecutions } from "../../src/db/jobs.js";
import {
  EXECUTION_STATUSES,
  EXECUTION_TRANSITIONS,
  type ExecutionStatus,
  JOB_STATUSES,
  JOB_TRANSITIONS,
  type JobStatus,
} from "../../src/vocabulary.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { claimOnly, deleteJob, INSTANCE, jobIn, reload, submit } from "../helpers/jobs.js";

const failure = { code: "provider_error", message: "boom" };

/** Tries the store operation that moves a job into `to`, whatever state it is in. */
async function attemptJobTransition(db: Db, job: JobWithExecutions, to: JobStatus) {
  switch (to) {
    case "queued":
      return requeueJob(db, job.id, { instance: INSTANCE, cause: "test" });
    case "running":
      return claimJobs(db, { instance: INSTANCE, limit: 100, leaseMs: 30_000 });
    case "cancelled":
      return cancelJob(db, job.id, { actor: "tester", reason: "table" });
    case "timed_out":
      return timeOutJob(db, job.id, INSTANCE);
    default: {
      const results: Record<string, ["completed" | "failed", "completed" | "failed"]> = {
        completed: ["completed", "completed"],
        partial: ["completed", "failed"],
        failed: ["failed", "failed"],
      };
      const plan = results[to] ?? ["completed", "completed"];
      for (const [i, execution] of job.executions.entries()) {
        const status = plan[i] ?? "completed";
        await startExecution(db, execution.id, INSTANCE);
        await finishExecution(
          db,
          execution.id,
          INSTANCE,
          status === "completed" ? { status, output: { text: "ok" } } : { status, error: failure },
        );
      }
      return finishJob(db, job.id, INSTANCE);
    }
  }
}

/** An execution (the job's first) in `status`, and the job it belongs to. */
async function executionIn(db: Db, status: ExecutionStatus) {
  const job = await submit(db);
  const exec = job.executions[0];
  if (exec === undefined) throw new Error("fixture needs an execution");
  if (status === "pending") return { job, exec };
  await claimOnly(db, job.id);
  if (status === "skipped") {
    expect(await skipExecution(db, exec.id, INSTANCE, failure)).toBeDefined();
    return { job, exec };
  }
  if (status === "cancelled") {
    expect((await cancelJob(db, job.id, { actor: "tester" })).outcome).toBe("cancelled");
    return { job, exec };
  }
  expect(await startExecution(db, exec.id, INSTANCE)).toBeDefined();
  if (status === "completed") {
    await finishExecution(db, exec.id, INSTANCE, { status, output: { ok: true } });
  } else if (status === "failed") {
    await finishExecution(db, exec.id, INSTANCE, { status, error: failure });
  }
  return { job, exec };
}

async function attemptExecutionTransition(
  db: Db,
  job: JobWithExecutions,
  execId: string,
  to: ExecutionStatus,
) {
  switch (to) {
    case "pending":
      return requeueJob(db, job.id, { instance: INSTANCE, cause: "test" });
    case "running":
      return startExecution(db, execId, INSTANCE);
    case "completed":
      return finishExecution(db, execId, INSTANCE, { status: "completed", output: { ok: 1 } });
    case "failed":
      return finishExecution(db, execId, INSTANCE, { status: "failed", error: failure });
    case "cancelled":
      return cancelJob(db, job.id, { actor: "tester" });
    case "skipped":
      return skipExecution(db, execId, INSTANCE, failure);
  }
}

describe.each(DRIVERS)("status transitions on %s", (driver) => {
  let db: Db;
  useTestDatabase(driver, (fresh) => {
    db = fresh.database.db;
  });

  const jobCases = JOB_STATUSES.flatMap((from) => JOB_STATUSES.map((to) => [from, to] as const));
  it.each(jobCases)("job %s → %s is allowed only if the table says so", async (from, to) => {
    const job = await jobIn(db, from);
    await attemptJobTransition(db, job, to);
    const after = await reload(db, job.id);
    const allowed = JOB_TRANSITIONS[from].includes(to);
    expect({ from, to, status: after.status }).toEqual({ from, to, status: allowed ? to : from });
    await deleteJob(db, job.id);
  });

  const execCases = EXECUTION_STATUSES.flatMap((from) =>
    EXECUTION_STATUSES.map((to) => [from, to] as const),
  );
  it.each(execCases)("execution %s → %s is allowed only if the table says so", async (from, to) => {
    const { job, exec } = await executionIn(db, from);
    if (from === "pending" && ["running", "completed", "failed", "skipped"].includes(to)) {
      // A runner writes only to executions of a job it holds.
      await claimOnly(db, job.id);
    }
    await attemptExecutionTransition(db, job, exec.id, to);
    const after = (await reload(db, job.id)).executions.find((e) => e.id === exec.id);
    const allowed = EXECUTION_TRANSITIONS[from].includes(to);
    expect({ from, to, status: after?.status }).toEqual({
      from,
      to,
      status: allowed ? to : from,
    });
    await deleteJob(db, job.id);
  });
});
