import { Agent } from "undici";
import { createLocalBus } from "../../src/cluster/local-bus.js";
import type { WebhookConfig } from "../../src/config.js";
import type { Db } from "../../src/db/connection.js";
import { insertJob, type JobWithExecutions, type NewJob } from "../../src/db/jobs.js";
import { createInstance, type Instance } from "../../src/instance.js";
import type { Metrics } from "../../src/metrics.js";
import { parseProviders } from "../../src/providers/config.js";
import { createProviderRegistry, type ProviderRegistry } from "../../src/providers/registry.js";
import type { JobContextManager } from "../../src/runner/job-context-manager.js";
import type { FeedEvent, JobFeed } from "../../src/runner/job-feed.js";
import type { Runner, RunnerOptions } from "../../src/runner/runner.js";
import type { StopAcks } from "../../src/runner/stop-acks.js";
import { testLogger } from "./logs.js";
import { withDeadline } from "./process.js";

export interface RunningRunner {
  runner: Runner;
  /** The whole instance the runner is part of (reaper, webhook loop, endings). */
  instance: Instance;
  manager: JobContextManager;
  feed: JobFeed;
  acks: StopAcks;
  providers: ProviderRegistry;
  metrics: Metrics;
  published: string[];
  /** Submits a job and resolves when the runner has published its end. */
  submit(job: NewJob): Promise<{ job: JobWithExecutions; ended: Promise<FeedEvent> }>;
  stop(graceMs?: number): Promise<void>;
}

/** A real instance (runner, reaper, webhook loop) on `db` with providers from raw configuration, started. */
export async function startRunner(
  db: Db,
  providersRaw: Record<string, unknown>,
  options: Partial<RunnerOptions> & {
    instance?: string;
    webhooks?: Partial<WebhookConfig>;
    /** NVIDIA_SMI, for `gpu_check` providers. */
    nvidiaSmi?: string;
  } = {},
): Promise<RunningRunner> {
  const agent = new Agent({ keepAliveTimeout: 10_000 });
  const providers = await createProviderRegistry(
    parseProviders(providersRaw, {}),
    agent,
    options.nvidiaSmi === undefined ? {} : { nvidiaSmi: options.nvidiaSmi },
  );
  const bus = createLocalBus();
  const name = options.instance ?? "runner-test";
  const instance = createInstance({
    db,
    instance: name,
    role: "all",
    providers,
    logger: testLogger(name),
    bus,
    runner: {
      concurrency: options.concurrency ?? 16,
      leaseMs: options.leaseMs ?? 30_000,
      cancelAckMs: options.cancelAckMs ?? 5_000,
      claimPollMs: options.claimPollMs ?? 200,
      maxAttempts: options.maxAttempts ?? 3,
      cancelPollMs: options.cancelPollMs ?? 2_000,
    },
    webhooks: { retryBaseMs: 5_000, allowHttp: true, allowPrivate: true, ...options.webhooks },
    defaultMetrics: false,
  });
  await instance.start();
  const runner = instance.runner;
  if (runner === undefined) throw new Error("role all has a runner");
  const { manager, feed, acks, metrics } = instance;
  return {
    runner,
    instance,
    manager,
    feed,
    acks,
    providers,
    metrics,
    published: bus.published,
    async submit(newJob) {
      const { job } = await insertJob(db, newJob);
      const ended = endOf(feed, job.id);
      runner.notifyNewWork();
      return { job, ended };
    },
    async stop(graceMs = 0) {
      await instance.stop(graceMs);
      await providers.close();
      await agent.close();
    },
  };
}

/** Resolves with the job's `end` event (fails after 20 s). Subscribe before the job can end. */
export function endOf(feed: JobFeed, jobId: string, ms = 20_000): Promise<FeedEvent> {
  let unsubscribe = () => {};
  const ended = new Promise<FeedEvent>((resolve) => {
    unsubscribe = feed.subscribe(jobId, (event) => {
      if (event.type === "end") resolve(event);
    });
  });
  return withDeadline(ended, ms, `job ${jobId} did not end within ${ms} ms`).finally(unsubscribe);
}

/** Resolves once `condition` holds, checking after each of the job's feed events (fails after `ms`). */
export function feedUntil(
  feed: JobFeed,
  jobId: string,
  condition: (event: FeedEvent) => boolean,
  ms = 10_000,
) {
  let unsubscribe = () => {};
  const seen = new Promise<FeedEvent>((resolve) => {
    unsubscribe = feed.subscribe(jobId, (event) => {
      if (condition(event)) resolve(event);
    });
  });
  return withDeadline(
    seen,
    ms,
    `job ${jobId}: expected feed event not seen within ${ms} ms`,
  ).finally(unsubscribe);
}

/** One execution per (key, provider, model, input). */
export function jobOf(
  executions: {
    key: string;
    provider: string;
    model?: string;
    input?: unknown;
    dependsOn?: string[];
    retries?: number;
  }[],
  overrides: Partial<NewJob> = {},
): NewJob {
  return {
    owner: "service:test",
    timeoutMs: 60_000,
    maxParallel: 8,
    executions: executions.map((e) => ({
      key: e.key,
      provider: e.provider,
      model: e.model ?? e.key,
      input: e.input ?? { messages: [{ role: "user", content: "hi" }] },
      dependsOn: e.dependsOn ?? [],
      retries: e.retries ?? 0,
    })),
    ...overrides,
  };
}
