import { createBatcher } from "../batcher.js";
import type { Db } from "../db/connection.js";
import {
  type ExecutionFinish,
  type ExecutionResult,
  type FinishedExecution,
  finishExecutions,
} from "../db/execution-finishes.js";
import { startExecutions } from "../db/executions.js";
import { type FinishOutcome, finishJobs } from "../db/job-endings.js";
import type { ClaimedJob, ClaimRequest } from "../db/job-transitions.js";
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
  ): Promise<{ row: FinishedExecution | undefined; job?: FinishOutcome }>;
  finishJob(jobId: string): Promise<FinishOutcome>;
}

/**
 * The runner's side of a claim made along with a batch of finishes (one
 * statement per cycle: src/db/execution-finishes.ts). Only one claim is in
 * flight at a time, the runner's own or one riding on a batch: `take` answers
 * undefined while another is.
 */
export interface ClaimAlong {
  /**
   * At a batch's flush, with the number of jobs it may finish: the claim to
   * make in its statement (its `limit` the slots free before the batch
   * finishes any), or undefined for none.
   */
  take(releasing: number): ClaimRequest | undefined;
  /**
   * Exactly once per claim `take` gave: the jobs claimed, the limit the
   * statement applied, the jobs it finished (their slots are free: their
   * runs are only being told so) and when the statement was sent
   * (`performance.now()`); or undefined if the statement failed (nothing
   * was claimed or finished). Resolves once the claimed jobs are started,
   * before the batch's finishes are answered.
   */
  done(answer: ClaimedAlong | undefined): Promise<void>;
}

export interface ClaimedAlong {
  jobs: ClaimedJob[];
  limit: number;
  released: string[];
  sent: number;
}

/** Enough for every job a runner holds (RUNNER_CONCURRENCY is at most a few hundred). */
const MAX_BATCH = 256;

export function createWriteBatches(
  db: Db,
  instance: string,
  claimAlong?: ClaimAlong,
): WriteBatches {
  const starts = createBatcher<string, ExecutionRow | undefined>({
    maxItems: MAX_BATCH,
    run: async (ids) => {
      const started = await startExecutions(db, ids, instance);
      return ids.map((id) => started.get(id));
    },
  });
  const finishes = createBatcher<
    ExecutionFinish,
    { row: FinishedExecution | undefined; job?: FinishOutcome }
  >({
    maxItems: MAX_BATCH,
    run: async (items) => {
      const claim = claimAlong?.take(items.filter((i) => i.lastOf !== undefined).length);
      const sent = performance.now();
      let finished: Awaited<ReturnType<typeof finishExecutions>>;
      try {
        finished = await finishExecutions(db, items, instance, claim);
      } catch (err) {
        if (claim !== undefined) await claimAlong?.done(undefined);
        throw err;
      }
      if (finished.claim !== undefined) await claimAlong?.done({ ...finished.claim, sent });
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
