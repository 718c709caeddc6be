import { createBatcher } from "../batcher.js";
import type { Db } from "../db/connection.js";
import {
  type ExecutionFinish,
  type ExecutionResult,
  finishExecutions,
} from "../db/execution-finishes.js";
import { startExecutions } from "../db/executions.js";
import { type FinishOutcome, finishJobs } from "../db/job-endings.js";
import type { ExecutionRow } from "../db/schema.js";

/**
 * The writes every job makes on its way through a runner, grouped across
 * jobs (src/batcher.ts): executions starting, executions finishing, jobs
 * finishing. Each is the one-job function of src/db with the same guards,
 * so a batch changes exactly the rows those would have. A cancel never goes
 * through here: it has its own transaction and never waits for a batch.
 */
export interface WriteBatches {
  startExecution(id: string): Promise<ExecutionRow | undefined>;
  /**
   * With `lastOf` (its job's id), every other execution of that job has
   * settled, so the job's finish goes in the same statement; `job` is then
   * that finish's outcome.
   */
  finishExecution(
    id: string,
    result: ExecutionResult,
    lastOf?: string,
  ): Promise<{ row: ExecutionRow | undefined; job?: FinishOutcome }>;
  finishJob(jobId: string): Promise<FinishOutcome>;
}

/** Enough for every job a runner holds (RUNNER_CONCURRENCY is at most a few hundred). */
const MAX_BATCH = 256;

export function createWriteBatches(db: Db, instance: string): WriteBatches {
  const starts = createBatcher<string, ExecutionRow | undefined>({
    maxItems: MAX_BATCH,
    run: async (ids) => {
      const started = await startExecutions(db, ids, instance);
      return ids.map((id) => started.get(id));
    },
  });
  const finishes = createBatcher<
    ExecutionFinish,
    { row: ExecutionRow | undefined; job?: FinishOutcome }
  >({
    maxItems: MAX_BATCH,
    run: async (items) => {
      const finished = await finishExecutions(db, items, instance);
      return items.map((i) => {
        const job = i.lastOf === undefined ? undefined : finished.jobs.get(i.lastOf);
        return { row: finished.executions.get(i.id), ...(job === undefined ? {} : { job }) };
      });
    },
  });
  const jobs = createBatcher<string, FinishOutcome>({
    maxItems: MAX_BATCH,
    run: async (ids) => {
      const outcomes = await finishJobs(db, ids, instance);
      return ids.map((id) => outcomes.get(id) ?? { ok: false, reason: "not_found" });
    },
  });
  return {
    startExecution: (id) => starts.add(id),
    finishExecution: (id, result, lastOf) => finishes.add({ id, result, lastOf }),
    finishJob: (jobId) => jobs.add(jobId),
  };
}
