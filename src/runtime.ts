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
import type { Config, WebhookConfig } from "./config.js";
import { type Database, migrateDatabase, openDatabase } from "./db/connection.js";
import { createInstance } from "./instance.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";
import { defaultProviders, loadProvidersFile } from "./providers/config.js";
import { createHttpAgent } from "./providers/http-client.js";
import { createProviderRegistry, type ProviderRegistry } from "./providers/registry.js";
import type { CancelService } from "./runner/cancel.js";
import type { JobContextManager } from "./runner/job-context-manager.js";
import type { JobFeed } from "./runner/job-feed.js";
import type { Runner } from "./runner/runner.js";
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
  /** URL rules and retry timing for webhooks registered through the API. */
  webhooks: WebhookConfig;
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
    providers = await createProviderRegistry(providerConfigs, agent, {
      nvidiaSmi: config.nvidiaSmi,
    });
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
  const instance = createInstance({
    db: database.db,
    instance: config.instanceId,
    role: config.role,
    providers,
    logger,
    bus,
    runner: {
      concurrency: config.runnerConcurrency,
      leaseMs: config.leaseMs,
      cancelAckMs: config.cancelAckMs,
      maxAttempts: config.maxAttempts,
      cancelPollMs: config.cancelPollMs,
    },
    webhooks: config.webhooks,
  });
  await instance.start();

  const httpAgent = agent;
  const registry = providers;
  return {
    auth,
    metrics: instance.metrics,
    streams: createStreamRegistry(),
    notifyNewWork: instance.notifyNewWork,
    database,
    providers: registry,
    manager: instance.manager,
    feed: instance.feed,
    runner: instance.runner,
    cancelJob: instance.cancelJob,
    webhooks: config.webhooks,
    async stop(graceMs) {
      await instance.stop(graceMs);
      await registry.close();
      await httpAgent.close();
      await database.close();
    },
  };
}
