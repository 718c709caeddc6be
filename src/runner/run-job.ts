import {
  type CancelCauseFunc,
  type Context,
  cause,
  DeadlineExceeded,
  withCancelCause,
  withDeadline,
} from "../context/context.js";
import { appendEvent } from "../db/events.js";
import { recordPartialOutput, skipExecution } from "../db/executions.js";
import { type FinishOutcome, failJob, markStopped, timeOutJob } from "../db/job-endings.js";
import type { ClaimedJob } from "../db/job-transitions.js";
import { jobStatuses, requeueJob } from "../db/job-transitions.js";
import {
  isDatabaseUnavailable,
  retryWhileUnavailable,
  unavailableCode,
} from "../db/unavailable.js";
import type { Logger } from "../logger.js";
import { CancelCause, isCause } from "../providers/causes.js";
import { ACTIVE_EXECUTION_STATUSES } from "../vocabulary.js";
import { type DagNode, nextStep, stuck } from "./dag.js";
import { type RunnerEnv, runExecution } from "./execute.js";
import type { JobContextManager } from "./job-context-manager.js";
import type { WriteBatches } from "./write-batches.js";

export interface JobRunDeps extends RunnerEnv {
  manager: JobContextManager;
  /** Claims of one job before a run that fails internally fails it for good (MAX_ATTEMPTS). */
  maxAttempts: number;
  /** LEASE_MS: bounds how long the job's closing writes retry through a database outage. */
  leaseMs: number;
  /** The runner's root context: cancelled only if the runner is torn down. */
  root: Context;
  writes: WriteBatches;
}

/**
 * Runs one claimed job to its end. Its context (cancel cause + the job's
 * deadline) is registered in the JobContextManager for the whole run and
 * unregistered in a `finally`: be careful that nothing between register and
 * that `finally` can escape it. Every execution has settled before the job's
 * outcome is written, so "stopped" means sockets closed and processes gone.
 */
export async function runJob(deps: JobRunDeps, job: ClaimedJob): Promise<void> {
  const log = deps.logger.child({ job_id: job.id });
  const [jobCtx, cancelJob] = withCancelCause(deps.root);
  const [runCtx, releaseDeadline] =
    job.deadlineAt === null ? [jobCtx, () => {}] : withDeadline(jobCtx, job.deadlineAt);
  let registered = false;
  try {
    deps.manager.register(job.id, jobCtx, cancelJob);
    registered = true;
    deps.feed.publish({ type: "job", jobId: job.id, status: "running" });
    log.info({ attempt: job.attempt, executions: job.executions.length }, "job started");
    const ran = await runDag(deps, job, runCtx, cancelJob, log);
    await conclude(deps, job, jobCtx, runCtx, ran, log);
  } catch (err) {
    // A database that went away is not the job's fault: it is given back at no
    // attempt's cost. Anything else requeues it for another attempt, or fails it
    // once MAX_ATTEMPTS are spent, so a job that always breaks its runner cannot
    // loop (nor call its provider) forever. All are guarded (running, held here):
    // no-ops if the job already ended; if they cannot be written, the lease lapses.
    if (registered && isDatabaseUnavailable(err)) {
      // The database went away under the run: not the job's fault, so no attempt is spent.
      log.warn({ code: unavailableCode(err) }, "the database failed under the job; giving it back");
      await giveBack(deps, job.id, "database_unavailable");
    } else if (registered) {
      const exhausted = job.attempt >= deps.maxAttempts;
      log.error(
        { err, attempt: job.attempt },
        exhausted ? "job run failed; failing the job" : "job run failed; requeueing it",
      );
      const message = err instanceof Error ? err.message.slice(0, 300) : String(err);
      const handled = await (exhausted
        ? failJob(deps.db, job.id, {
            actor: deps.instance,
            guard: { holder: deps.instance },
            error: {
              code: "runner_error",
              message: `failed on attempt ${job.attempt}: ${message}`,
            },
          })
        : requeueJob(deps.db, job.id, { instance: deps.instance, cause: "runner_error" })
      ).catch(() => false);
      if (!handled) log.warn("could not record the failure; the job's lease will lapse instead");
      else if (exhausted) deps.endings.ended({ kind: "ended", jobId: job.id, status: "failed" });
      else deps.feed.publish({ type: "job", jobId: job.id, status: "queued" });
    } else {
      log.error({ err }, "job could not be started on this instance");
    }
  } finally {
    if (registered) deps.manager.unregister(job.id);
    releaseDeadline();
    cancelJob();
  }
}

/** What a job's DAG left: the partial outputs of executions stopped, and the job's finish if its last execution wrote it. */
interface DagRun {
  partials: Map<string, unknown>;
  finished?: FinishOutcome;
}

/** A DAG node that will not change again: neither starting nor active (SPEC.md section 2). */
const settled = (status: DagNode["status"]) =>
  status !== "starting" && !ACTIVE_EXECUTION_STATUSES.includes(status);

/** Runs the DAG until every execution settled. */
async function runDag(
  deps: JobRunDeps,
  job: ClaimedJob,
  ctx: Context,
  cancelJob: CancelCauseFunc,
  log: Logger,
): Promise<DagRun> {
  const nodes: DagNode[] = job.executions.map((e) => ({
    key: e.key,
    status: e.status,
    dependsOn: e.dependsOn,
  }));
  const node = new Map(nodes.map((n) => [n.key, n]));
  const execution = new Map(job.executions.map((e) => [e.key, e]));
  const running = new Map<string, Promise<void>>();
  const ran: DagRun = { partials: new Map() };

  const launch = (key: string) => {
    const exec = execution.get(key);
    const n = node.get(key);
    if (exec === undefined || n === undefined) return;
    n.status = "starting";
    const run = runExecution(deps, exec, ctx, {
      writeRetryMs: deps.leaseMs / 2,
      started: job.started.has(exec.id),
      isLast: () => ctx.err === undefined && nodes.every((o) => o === n || settled(o.status)),
    })
      .then((outcome) => {
        if (outcome.status === "stopped") {
          n.status = "cancelled";
          if (outcome.partial !== undefined) ran.partials.set(exec.id, outcome.partial);
        } else {
          n.status = outcome.status;
          if (outcome.job !== undefined) ran.finished = outcome.job;
        }
      })
      .finally(() => running.delete(key));
    running.set(key, run);
  };

  const skip = async (key: string, error: { code: string; message: string }) => {
    const exec = execution.get(key);
    const n = node.get(key);
    if (exec === undefined || n === undefined) return;
    n.status = "skipped";
    if ((await skipExecution(deps.db, exec.id, deps.instance, error)) === undefined) return;
    deps.feed.publish({
      type: "execution",
      jobId: job.id,
      executionId: exec.id,
      key,
      status: "skipped",
    });
    await appendEvent(deps.db, {
      jobId: job.id,
      type: "execution_skipped",
      actor: deps.instance,
      data: { key, ...error },
    });
  };

  try {
    // Those the claim started run first: they are running in the store already.
    for (const e of job.executions) if (job.started.has(e.id)) launch(e.key);
    for (;;) {
      if (ctx.err !== undefined) break;
      const step = nextStep(nodes);
      for (const s of step.skip) await skip(s.key, { code: s.code, message: s.message });
      if (step.skip.length > 0) continue;
      for (const key of step.ready.slice(0, Math.max(0, job.maxParallel - running.size))) {
        launch(key);
      }
      if (running.size === 0) {
        const left = stuck(nodes);
        if (left.length === 0) break;
        for (const key of left)
          await skip(key, {
            code: "dependency_cycle",
            message: "its dependencies wait on each other",
          });
        continue;
      }
      await Promise.race([...running.values(), ctx.done]);
    }
  } catch (err) {
    // A failed write: stop the rest rather than run on unrecorded; the lease brings the job back.
    log.error({ err }, "stopping the job's executions after a failure");
    cancelJob(new CancelCause("runner_lost", "a database write failed"));
    throw err;
  } finally {
    await Promise.allSettled([...running.values()]);
  }
  return ran;
}

/**
 * Hands a job this instance can no longer run back to the queue without
 * spending an attempt (its run stopped for a reason of ours: a lease we
 * could not renew, a database that went away). Retries through an outage
 * for up to LEASE_MS; guarded by "running, held here", so it is a no-op
 * once the job ended or another instance took it. If the database stays
 * away longer, the lease lapses and the reaper forgives the outage.
 */
async function giveBack(deps: JobRunDeps, jobId: string, cause: string): Promise<void> {
  const requeued = await retryWhileUnavailable(
    () => requeueJob(deps.db, jobId, { instance: deps.instance, cause, countAttempt: false }),
    deps.leaseMs,
  ).catch(() => false);
  if (requeued) deps.feed.publish({ type: "job", jobId, status: "queued" });
}

/**
 * Writes the job's outcome once every execution has settled: first what the
 * outcome is (from the context's cause and the race with other endings),
 * then one guarded transition from src/db/job-endings.ts, then one
 * `jobEnded` notice. Each write retries through a brief database outage
 * (they are guarded, so a retry after a commit whose answer was lost
 * changes nothing): a finished job's results and a cancelled job's stop
 * report are not lost to a blip.
 */
async function conclude(
  deps: JobRunDeps,
  job: ClaimedJob,
  jobCtx: Context,
  runCtx: Context,
  { partials, finished: finishedWithLast }: DagRun,
  log: Logger,
): Promise<void> {
  const { db, instance, feed, endings } = deps;
  if (finishedWithLast?.ok === true) {
    // The last execution's write finished the job: whatever came after (a
    // cancel, the deadline, a shutdown) found it ended.
    endings.ended({ kind: "ended", jobId: job.id, status: finishedWithLast.status });
    log.info({ status: finishedWithLast.status }, "job finished");
    return;
  }
  const durable = <T>(write: () => Promise<T>) => retryWhileUnavailable(write, deps.leaseMs / 2);
  const why = jobCtx.err === undefined ? undefined : cause(jobCtx);
  const keepPartials = async () => {
    for (const [id, output] of partials) await durable(() => recordPartialOutput(db, id, output));
  };
  const stopped = async (contextAborted: boolean) => {
    await keepPartials();
    const stop = (await durable(() => markStopped(db, job.id, { actor: instance }))) ?? null;
    endings.ended({ kind: "stopped", jobId: job.id, stop, by: "runner", contextAborted });
    if (stop) log.info({ cancel_to_stop_ms: stop.cancelToStopMs }, "job stopped");
  };

  if (isCause(why, "cancelled")) {
    if (await why.committed) return stopped(true);
    // The cancel that aborted us did not commit: see what the job is now.
    const [current] = await durable(() => jobStatuses(db, [job.id]));
    if (current?.status === "cancelled") return stopped(true); // another cancel did
    if (current?.status === "running" && current.instance === instance) {
      // The store failed mid-cancel and the caller was told so (503): the work
      // stopped, but the job was not cancelled. Hand it back, at no attempt's cost.
      await giveBack(deps, job.id, "cancel_not_recorded");
      log.warn("a cancel aborted the job but was not recorded; the job was requeued");
      return;
    }
    if (current !== undefined) feed.publish({ type: "end", jobId: job.id, status: current.status });
    return;
  }
  if (isCause(why, "runner_lost")) {
    log.warn({ reason: (why as CancelCause).message }, "job abandoned on this instance");
    await giveBack(deps, job.id, "lease_not_renewed");
    return;
  }
  if (isCause(why, "shutdown")) {
    if (
      await durable(() =>
        requeueJob(db, job.id, { instance, cause: "shutdown", countAttempt: false }),
      )
    ) {
      feed.publish({ type: "job", jobId: job.id, status: "queued" });
      log.info("job requeued for another instance");
    } else {
      await stopped(true); // a cancel got there first
    }
    return;
  }
  if (runCtx.err === DeadlineExceeded) {
    if (await durable(() => timeOutJob(db, job.id, instance))) {
      await keepPartials();
      endings.ended({ kind: "ended", jobId: job.id, status: "timed_out" });
      log.info("job timed out");
    } else {
      await stopped(false);
    }
    return;
  }
  const finished = await durable(() => deps.writes.finishJob(job.id));
  if (finished.ok) {
    endings.ended({ kind: "ended", jobId: job.id, status: finished.status });
    log.info({ status: finished.status }, "job finished");
  } else if (finished.reason === "not_running" && finished.status === "cancelled") {
    await stopped(false); // the cancel won the race against the last execution
  } else if (finished.reason === "not_running" && finished.status !== "queued") {
    // Ended already: another ending won, or a retried write whose first try had committed.
    feed.publish({ type: "end", jobId: job.id, status: finished.status });
    log.warn({ status: finished.status }, "job had already ended");
  } else {
    log.error({ outcome: finished }, "job could not be finished");
  }
}
