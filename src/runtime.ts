import { join } from "node:path";
import type { Agent } from "undici";
import {
  type Authenticator,
  createAuthenticator,
  DEFAULT_SERVICE_AUDIENCE,
  DEFAULT_SERVICE_ISSUER,
} from "./api/auth/tokens.js";
import { createStreamRegistry, type StreamRegistry } from "./api/streams.js";
import { createClusterBus } from "./cluster/pg-bus.js";
import type { Config } from "./config.js";
import { type Database, migrateDatabase, openDatabase } from "./db/connection.js";
import { purgeExpiredNonces } from "./db/nonces.js";
import { deleteExpiredRateLimits } from "./db/rate-limits.js";
import { createOutageMemory, reapExpiredLeases } from "./db/reaper.js";
import { isDatabaseUnavailable, unavailableCode } from "./db/unavailable.js";
import type { Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { CancelCause } from "./providers/causes.js";
import { defaultProviders, loadProvidersFile } from "./providers/config.js";
import { createHttpAgent } from "./providers/http-client.js";
import { createProviderRegistry, type ProviderRegistry } from "./providers/registry.js";
import { type CancelService, createCancelService } from "./runner/cancel.js";
import { createJobContextManager, type JobContextManager } from "./runner/job-context-manager.js";
import { createJobFeed, type JobFeed } from "./runner/job-feed.js";
import { createRunner, type Runner } from "./runner/runner.js";
import { createStopAcks } from "./runner/stop-acks.js";
import { resolveSecrets } from "./secrets.js";

/** Everything one quench instance runs, built from its configuration. */
export interface Runtime {
  auth: Authenticator;
  metrics: Metrics;
  streams: StreamRegistry;
  notifyNewWork: () => void;
  database: Database;
  providers: ProviderRegistry;
  manager: JobContextManager;
  feed: JobFeed;
  /** Undefined when ROLE=api. */
  runner: Runner | undefined;
  cancelJob: CancelService;
  /** Stops the runner (grace, then abort and requeue), then closes connections and the database. */
  stop(graceMs: number): Promise<void>;
}

export async function startRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const providerConfigs = config.providersFile
    ? await loadProvidersFile(config.providersFile)
    : defaultProviders();
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: join(config.dataDir, "pglite"),
  });
  let agent: Agent | undefined;
  let providers: ProviderRegistry | undefined;
  try {
    await migrateDatabase(database);
    agent = createHttpAgent();
    providers = await createProviderRegistry(providerConfigs, agent);
  } catch (err) {
    await agent?.close();
    await database.close();
    throw err;
  }
  logger.info(
    { driver: database.driver, role: config.role, providers: providers.names() },
    "database ready",
  );

  const secrets = await resolveSecrets(config);
  const auth = createAuthenticator({
    sessionSecret: secrets.sessionSecret,
    service: {
      secret: secrets.serviceJwtSecret,
      jwksUrl: config.serviceJwt.jwksUrl,
      issuer: config.serviceJwt.issuer ?? DEFAULT_SERVICE_ISSUER,
      audience: config.serviceJwt.audience ?? DEFAULT_SERVICE_AUDIENCE,
    },
    agent,
  });
  const bus = createClusterBus({
    database,
    databaseUrl: config.databaseUrl,
    instance: config.instanceId,
    logger,
    enabled: config.listenNotify,
  });
  const manager = createJobContextManager();
  const metrics = createMetrics({ runningJobs: () => manager.count() });
  const feed = createJobFeed();
  const acks = createStopAcks();
  const env = { db: database.db, instance: config.instanceId, providers, feed, logger, metrics };
  const runner =
    config.role === "api"
      ? undefined
      : createRunner(
          { ...env, manager, acks, bus },
          {
            concurrency: config.runnerConcurrency,
            leaseMs: config.leaseMs,
            cancelAckMs: config.cancelAckMs,
            maxAttempts: config.maxAttempts,
            cancelPollMs: config.cancelPollMs,
          },
        );
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
  const cancelJob =
    runner?.cancelJob ??
    createCancelService({ db: database.db, manager, bus, acks, ackMs: config.cancelAckMs });
  const notifyNewWork = () => {
    runner?.notifyNewWork();
    void bus.publishNewWork();
  };
  // Any instance, whatever its role, reaps jobs whose runner stopped renewing their lease;
  // lapses during an outage it saw are forgiven (no attempt spent).
  const reapEveryMs = Math.max(100, Math.floor(config.leaseMs / 3));
  const outages = createOutageMemory(2 * reapEveryMs);
  const reaper = setInterval(
    () =>
      void reapExpiredLeases(database.db, {
        actor: config.instanceId,
        maxAttempts: config.maxAttempts,
        forgive: outages.spanAt,
      })
        .then((reaped) => {
          const lost = (ids: string[], outcome: string) => {
            for (const id of ids)
              logger.warn({ job_id: id, outcome }, "reaped the job of a lost runner");
          };
          lost(reaped.requeued, "requeued");
          lost(reaped.failed, "failed");
          lost(reaped.stopped, "stop recorded");
          for (const _ of reaped.failed) metrics.jobsFinished.inc({ status: "failed" });
          for (const _ of reaped.stopped) metrics.jobsFinished.inc({ status: "cancelled" });
          if (reaped.requeued.length > 0) notifyNewWork();
        })
        .catch((err: unknown) => {
          if (!isDatabaseUnavailable(err)) return logger.error({ err }, "reaping failed");
          outages.failed();
          logger.warn(
            { code: unavailableCode(err) },
            "reaping skipped: the database is unavailable",
          );
        }),
    reapEveryMs,
  );

  // Shared rate-limit counters of ended windows, and SIWE nonces that expired unused
  // (issuing is rate-limited per client, so together the table stays bounded).
  const sweeper = setInterval(
    () =>
      void Promise.all([
        deleteExpiredRateLimits(database.db).catch((err: unknown) =>
          logger.warn({ err }, "deleting expired rate limits failed"),
        ),
        purgeExpiredNonces(database.db).catch((err: unknown) =>
          logger.warn({ err }, "purging expired sign-in nonces failed"),
        ),
      ]),
    60_000,
  );
  sweeper.unref();

  const httpAgent = agent;
  const registry = providers;
  return {
    auth,
    metrics,
    streams: createStreamRegistry(),
    notifyNewWork,
    database,
    providers: registry,
    manager,
    feed,
    runner,
    cancelJob,
    async stop(graceMs) {
      clearInterval(reaper);
      clearInterval(sweeper);
      await runner?.stop(graceMs);
      await bus.close();
      await registry.close();
      await httpAgent.close();
      await database.close();
    },
  };
}
