import type { Context } from "../context/context.js";
import type { Db } from "../db/connection.js";
import { appendEvent, type JobEventType } from "../db/events.js";
import type { ExecutionResult } from "../db/execution-finishes.js";
import { setProgress, setRemoteId, setUsage } from "../db/executions.js";
import type { FinishOutcome } from "../db/job-endings.js";
import type { ExecutionRow, UsageRecord } from "../db/schema.js";
import { retryWhileUnavailable } from "../db/unavailable.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { ProviderError } from "../providers/errors.js";
import { runWithPolicies } from "../providers/policy.js";
import type { ProviderRegistry } from "../providers/registry.js";
import type { GpuReleases } from "./gpu-releases.js";
import type { JobEndings } from "./job-ended.js";
import type { JobFeed } from "./job-feed.js";
import type { RemoteStops } from "./remote-stops.js";
import { usageOf } from "./usage.js";
import type { WriteBatches } from "./write-batches.js";

/** A progress report is written to the execution at most this often (and always at its end). */
const PROGRESS_WRITE_MS = 250;

/** What one runner needs to run executions; shared by every job it runs. */
export interface RunnerEnv {
  db: Db;
  instance: string;
  providers: ProviderRegistry;
  feed: JobFeed;
  logger: Logger;
  metrics: Metrics;
  /** Where the runner announces each job's end (metrics, feed, acks and webhooks listen). */
  endings: JobEndings;
  /** Records remote-queue stops once the provider answered; the runner makes one if not given. */
  remoteStops?: RemoteStops;
  /** Records `gpu_check` releases once nvidia-smi answered; the runner makes one if not given. */
  gpuReleases?: GpuReleases;
  /** Starts and finishes, grouped across jobs; the runner makes them if not given. */
  writes?: WriteBatches;
}

/**
 * How an execution ended, as far as the job's DAG is concerned:
 * - completed / failed: recorded;
 * - stopped: the job was cancelled, timed out or shut down (or a cancel won
 *   the race to the row); `partial` is what it had received, for the caller
 *   to keep once the job's own transition has marked it.
 */
export type ExecutionOutcome =
  | { status: "completed" | "failed"; job?: FinishOutcome }
  | { status: "stopped"; partial: unknown };

export interface ExecutionRunOptions {
  /** How long the result's writes retry through a database outage (guarded writes: retries are safe). */
  writeRetryMs?: number;
  /** The job's claim already started it (pending → running, its event written). */
  started?: boolean;
  /**
   * Asked as the result is written: true when every other execution of the
   * job has settled and the job is not being stopped, so the job's finish is
   * written with this one's (its outcome comes back as `job`).
   */
  isLast?: () => boolean;
}

/**
 * Runs one pending execution to its end on `jobCtx`'s child contexts. Never
 * throws for a provider failure; a database failure propagates (the job is
 * then left to its lease).
 */
export async function runExecution(
  env: RunnerEnv & { writes: WriteBatches },
  exec: ExecutionRow,
  jobCtx: Context,
  options: ExecutionRunOptions = {},
): Promise<ExecutionOutcome> {
  const { db, instance, feed } = env;
  const writeRetryMs = options.writeRetryMs ?? 0;
  const log = env.logger.child({ job_id: exec.jobId, execution_id: exec.id, key: exec.key });
  if (jobCtx.err !== undefined) return { status: "stopped", partial: undefined };
  if (options.started !== true && (await env.writes.startExecution(exec.id)) === undefined) {
    return { status: "stopped", partial: undefined };
  }
  publishStatus(feed, exec, "running");
  // The execution's side writes (audit events, its remote id) run one after
  // another, so the trail keeps their order; `writes` settles when all are done.
  let writes: Promise<unknown> = Promise.resolve();
  const write = (op: () => Promise<unknown>) => {
    writes = writes.then(op).catch((err: unknown) => log.warn({ err }, "audit write failed"));
  };

  let partial: unknown;
  // The latest structured progress report, written at most every PROGRESS_WRITE_MS and at the end.
  let report: unknown;
  let reportDirty = false;
  let reportTimer: NodeJS.Timeout | undefined;
  const flushReport = () => {
    clearTimeout(reportTimer);
    reportTimer = undefined;
    if (!reportDirty) return;
    reportDirty = false;
    const value = report;
    write(() => setProgress(db, exec.id, value));
  };
  // GPU time: from the provider call's start, or as the provider bills it.
  let callStarted: number | undefined;
  let billedMs: number | undefined;
  // A remote-queue kind that submitted reports its stop later, usage included.
  let submittedRemotely = false;
  const usageUntil = (end: number, billed = billedMs) => {
    const price = env.providers.get(exec.provider)?.provider.config.price_per_second;
    return billed === undefined
      ? usageOf(end - (callStarted ?? end), "wall_clock", price)
      : usageOf(billed, "provider", price);
  };
  const countGpu = (usage: UsageRecord, outcome: string) =>
    env.metrics.gpuSeconds.inc({ provider: exec.provider, outcome }, usage.gpu_ms / 1000);

  const settle = async (result: ExecutionResult): Promise<ExecutionOutcome> => {
    flushReport();
    await writes;
    const durable = <T>(op: () => Promise<T>) => retryWhileUnavailable(op, writeRetryMs);
    const usage = callStarted === undefined ? undefined : usageUntil(Date.now());
    const lastOf = options.isLast?.() === true ? exec.jobId : undefined;
    const { row, job } = await durable(() =>
      env.writes.finishExecution(
        exec.id,
        usage === undefined ? result : { ...result, usage },
        lastOf,
      ),
    );
    if (row !== undefined && usage !== undefined) countGpu(usage, result.status);
    if (row === undefined) {
      // A cancel (or timeout) marked the execution first; its status stands.
      return {
        status: "stopped",
        partial: result.status === "completed" ? result.output : partial,
      };
    }
    publishStatus(feed, exec, row.status);
    return job === undefined ? { status: result.status } : { status: result.status, job };
  };

  const entry = env.providers.get(exec.provider);
  if (entry === undefined) {
    return settle({
      status: "failed",
      error: {
        code: "unknown_provider",
        message: `provider ${exec.provider} is not configured on ${instance}`,
      },
    });
  }
  // Only the provider call is inside the try: a failure to record its result
  // is the store's, not the provider's, and propagates to the job's handling.
  let output: unknown;
  callStarted = Date.now();
  const timer = env.metrics.providerCalls.startTimer({ provider: exec.provider });
  env.metrics.inflightExecutions.inc();
  try {
    output = await runWithPolicies(
      entry.provider,
      entry.slots,
      {
        ctx: jobCtx,
        executionId: exec.id,
        model: exec.model,
        input: exec.input,
        progress: (p) => {
          partial = p;
          if (feed.watched(exec.jobId)) {
            feed.publish({
              type: "progress",
              jobId: exec.jobId,
              executionId: exec.id,
              key: exec.key,
              output: p,
            });
          }
        },
        activity: () => {},
        report: (p) => {
          report = p;
          reportDirty = true;
          reportTimer ??= setTimeout(flushReport, PROGRESS_WRITE_MS);
          feed.publish({
            type: "progress",
            jobId: exec.jobId,
            executionId: exec.id,
            key: exec.key,
            output: partial,
            progress: p,
          });
        },
        gpuRelease: (release) => env.gpuReleases?.record(exec, release),
        remoteId: (id) => {
          submittedRemotely = true;
          write(() => setRemoteId(db, exec.id, instance, id));
        },
        billed: (ms) => {
          billedMs = ms;
        },
        remoteStop: (stop) => {
          const usage = usageUntil(
            (stop.confirmedAt ?? new Date()).getTime(),
            stop.billedMs ?? billedMs,
          );
          countGpu(usage, "stopped");
          env.remoteStops?.record(exec, stop, usage);
        },
        note: (type, data) =>
          write(() =>
            appendEvent(db, {
              jobId: exec.jobId,
              type: type as JobEventType,
              actor: instance,
              data: { key: exec.key, ...data },
            }),
          ),
      },
      { retries: exec.retries, timeoutMs: exec.timeoutMs },
    );
  } catch (err) {
    if (jobCtx.err !== undefined) {
      timer({ outcome: "stopped" });
      if (!submittedRemotely) {
        // Our side's stop is the GPU's stop here; a remote queue's comes with its remote stop.
        const usage = usageUntil(Date.now());
        countGpu(usage, "stopped");
        write(() => setUsage(db, exec.id, usage));
      }
      // A stopped run keeps its last report: how far it got ("step 412 of 1000").
      flushReport();
      await writes;
      return { status: "stopped", partial };
    }
    const failure =
      err instanceof ProviderError
        ? err
        : new ProviderError("provider_error", `${exec.provider}: unexpected failure`);
    if (!(err instanceof ProviderError)) log.error({ err }, "provider threw an unexpected error");
    timer({ outcome: failure.code });
    return settle({
      status: "failed",
      error: { code: failure.code, message: failure.message },
      output: partial,
      partial: partial !== undefined,
    });
  } finally {
    env.metrics.inflightExecutions.dec();
  }
  timer({ outcome: "completed" });
  return settle({ status: "completed", output });
}

function publishStatus(feed: JobFeed, exec: ExecutionRow, status: string): void {
  feed.publish({
    type: "execution",
    jobId: exec.jobId,
    executionId: exec.id,
    key: exec.key,
    status,
  });
}
