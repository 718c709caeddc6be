import { jobView } from "./api/job-view.js";
import type { ClusterBus } from "./cluster/pg-bus.js";
import type { Role, WebhookConfig } from "./config.js";
import type { Db } from "./db/connection.js";
import { getJob } from "./db/jobs.js";
import { purgeExpiredNonces } from "./db/nonces.js";
import { deleteExpiredRateLimits } from "./db/rate-limits.js";
import { createOutageMemory, reapExpiredLeases } from "./db/reaper.js";
import { isDatabaseUnavailable, unavailableCode } from "./db/unavailable.js";
import { purgeOldDeliveries } from "./db/webhook-attempts.js";
import { outboxBacklog } from "./db/webhook-outbox.js";
import type { Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { CancelCause } from "./providers/causes.js";
import type { ProviderRegistry } from "./providers/registry.js";
import { type CancelService, createCancelService } from "./runner/cancel.js";
import { createJobContextManager, type JobContextManager } from "./runner/job-context-manager.js";
import { createJobEndings, type JobEndings, listenForEndings } from "./runner/job-ended.js";
import { createJobFeed, type JobFeed } from "./runner/job-feed.js";
import { createRunner, type Runner } from "./runner/runner.js";
import { createStopAcks, type StopAcks } from "./runner/stop-acks.js";
import { createWebhookLoop, type WebhookLoop } from "./webhooks/loop.js";

/** What an instance is built from: its connections and its settings, made by the caller. */
export interface InstancePorts {
  db: Db;
  instance: string;
  role: Role;
  providers: ProviderRegistry;
  logger: Logger;
  /** LISTEN/NOTIFY between instances (src/cluster/pg-bus.ts), or an in-process stand-in. */
  bus: ClusterBus;
  runner: {
    concurrency: number;
    leaseMs: number;
    cancelAckMs: number;
    maxAttempts: number;
    cancelPollMs: number;
    claimPollMs?: number;
  };
  webhooks: WebhookConfig;
  /** Prometheus' process metrics (off in tests, which build many instances). */
  defaultMetrics?: boolean;
}

/** One quench instance's moving parts, wired once: the server, the tests and the benches all use this. */
export interface Instance {
  metrics: Metrics;
  manager: JobContextManager;
  feed: JobFeed;
  acks: StopAcks;
  endings: JobEndings;
  /** Undefined when ROLE=api. */
  runner: Runner | undefined;
  webhooks: WebhookLoop;
  cancelJob: CancelService;
  /** New work was submitted: claim here now, and tell the other instances. */
  notifyNewWork(): void;
  /** One reaper pass now (it also runs on its own every third of LEASE_MS). */
  reap(): Promise<void>;
  start(): Promise<void>;
  /** Stops the runner (grace, then abort and requeue), the reaper, the webhook loop and the bus; once. */
  stop(graceMs: number): Promise<void>;
}

export function createInstance(ports: InstancePorts): Instance {
  const { db, logger, bus } = ports;
  const manager = createJobContextManager();
  const metrics = createMetrics({
    runningJobs: () => manager.count(),
    webhookBacklog: () => outboxBacklog(db),
    defaults: ports.defaultMetrics ?? true,
  });
  const feed = createJobFeed();
  const acks = createStopAcks();
  const endings = createJobEndings((err) =>
    logger.error({ err }, "a listener of a job's end failed"),
  );
  listenForEndings(endings, {
    metrics,
    feed,
    acks,
    publishStopped: (jobId, ack) => void bus.publishStopped(jobId, ack).catch(() => {}),
  });
  const webhooks = createWebhookLoop({
    db,
    logger,
    metrics,
    config: ports.webhooks,
    renderJob: async (jobId) => {
      const job = await getJob(db, jobId);
      return job === undefined ? undefined : jobView(job);
    },
  });
  endings.listen(() => webhooks.wake());

  const env = { db, instance: ports.instance, providers: ports.providers, feed, logger, metrics };
  const runner =
    ports.role === "api"
      ? undefined
      : createRunner({ ...env, endings, manager, acks, bus }, ports.runner);
  const cancelJob =
    runner?.cancelJob ??
    createCancelService({ db, manager, bus, acks, endings, ackMs: ports.runner.cancelAckMs });
  const notifyNewWork = () => {
    runner?.notifyNewWork();
    void bus.publishNewWork().catch(() => {});
  };

  // Any instance, whatever its role, reaps jobs whose runner stopped renewing their lease;
  // lapses during an outage it saw are forgiven (no attempt spent).
  const reapEveryMs = Math.max(100, Math.floor(ports.runner.leaseMs / 3));
  const outages = createOutageMemory(2 * reapEveryMs);
  const reap = () =>
    reapExpiredLeases(db, {
      actor: ports.instance,
      maxAttempts: ports.runner.maxAttempts,
      forgive: outages.spanAt,
    })
      .then((reaped) => {
        const lost = (ids: string[], outcome: string) => {
          for (const id of ids)
            logger.warn({ job_id: id, outcome }, "reaped the job of a lost runner");
        };
        lost(reaped.requeued, "requeued");
        lost(reaped.failed, "failed");
        lost(
          reaped.stopped.map((s) => s.jobId),
          "stop recorded",
        );
        for (const jobId of reaped.failed)
          endings.ended({ kind: "ended", jobId, status: "failed" });
        for (const { jobId, ...stop } of reaped.stopped) {
          endings.ended({ kind: "stopped", jobId, stop, by: "reaper", contextAborted: false });
        }
        if (reaped.requeued.length > 0) notifyNewWork();
      })
      .catch((err: unknown) => {
        if (!isDatabaseUnavailable(err)) return logger.error({ err }, "reaping failed");
        outages.failed();
        logger.warn({ code: unavailableCode(err) }, "reaping skipped: the database is unavailable");
      });

  let reaper: NodeJS.Timeout | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let stopped: Promise<void> | undefined;
  return {
    metrics,
    manager,
    feed,
    acks,
    endings,
    runner,
    webhooks,
    cancelJob,
    notifyNewWork,
    reap,
    async start() {
      await bus.start({
        // Sent after the cancel committed: abort at once, no re-read (the poll covers the rest).
        onCancel: (jobId, by) => {
          if (manager.isRunning(jobId)) {
            manager.cancel(jobId, new CancelCause("cancelled", by.reason ?? "cancelled", by.actor));
          }
        },
        onStopped: (jobId, ack) => acks.resolve(jobId, ack),
        onNewWork: () => runner?.notifyNewWork(),
        onListen: () => void runner?.checkHeld(manager.jobIds()),
      });
      runner?.start();
      webhooks.start();
      reaper = setInterval(() => void reap(), reapEveryMs);
      // Shared rate-limit counters of ended windows, SIWE nonces that expired unused
      // (issuing is rate-limited per client, so together the table stays bounded), and
      // webhook events finished a week ago.
      sweeper = setInterval(
        () =>
          void Promise.all([
            deleteExpiredRateLimits(db).catch((err: unknown) =>
              logger.warn({ err }, "deleting expired rate limits failed"),
            ),
            purgeExpiredNonces(db).catch((err: unknown) =>
              logger.warn({ err }, "purging expired sign-in nonces failed"),
            ),
            purgeOldDeliveries(db).catch((err: unknown) =>
              logger.warn({ err }, "purging old webhook deliveries failed"),
            ),
          ]),
        60_000,
      );
      sweeper.unref();
    },
    stop(graceMs) {
      stopped ??= (async () => {
        clearInterval(reaper);
        clearInterval(sweeper);
        await runner?.stop(graceMs);
        await webhooks.stop();
        await bus.close();
      })();
      return stopped;
    },
  };
}
