import { serve } from "@hono/node-server";
import { createPublicClient, http } from "viem";
import { createApp } from "./api/app.js";
import { ConfigError, loadConfig } from "./config.js";
import { dashboardRoutes } from "./dashboard/routes.js";
import { createLogger } from "./logger.js";
import { ProvidersConfigError } from "./providers/config.js";
import { startRuntime } from "./runtime.js";

/**
 * `npm start`: configuration, database and migrations, providers and the
 * runner (unless ROLE=api), then the HTTP server.
 * SIGTERM/SIGINT drain in two stages (graphile-worker's shape): stop taking
 * work and answer `Connection: close`, then force-close what is left on an
 * unref'd timer at SHUTDOWN_GRACE_MS; the process exits 0.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, instance: config.instanceId });
  const runtime = await startRuntime(config, logger);
  let draining = false;
  const app = createApp({
    database: runtime.database,
    logger,
    metrics: runtime.metrics,
    instance: config.instanceId,
    role: config.role,
    runningJobs: () => runtime.manager.count(),
    isDraining: () => draining,
    api:
      config.role === "runner"
        ? undefined
        : {
            auth: runtime.auth,
            providers: runtime.providers,
            feed: runtime.feed,
            cancelJob: runtime.cancelJob,
            notifyNewWork: runtime.notifyNewWork,
            heldOwner: (id) => runtime.runner?.heldOwner(id),
            streams: runtime.streams,
            webhookRules: runtime.webhooks,
            siweDomains: config.siweDomains,
            siweHostFallback: config.env !== "production",
            siweChainIds: config.siweChainIds,
            publicClient: config.rpcUrl
              ? createPublicClient({
                  transport: http(config.rpcUrl, { timeout: 5_000, retryCount: 1 }),
                })
              : undefined,
            corsOrigins: config.corsOrigins,
            rateLimits: config.rateLimits,
            trustFlyClientIp: config.onFly,
          },
  });
  // The dashboard is mounted here, by the entry: the API app knows nothing of it.
  if (config.role !== "runner") {
    app.route("/", dashboardRoutes({ logger, minify: config.env === "production" }));
  }
  const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, (info) =>
    logger.info({ host: config.host, port: info.port }, "listening"),
  );

  const shutdown = async (signal: string) => {
    if (draining) return;
    draining = true;
    logger.info({ signal, grace_ms: config.shutdownGraceMs }, "draining");
    const force = setTimeout(() => {
      logger.warn("grace period over: closing remaining connections");
      if ("closeAllConnections" in server) server.closeAllConnections();
    }, config.shutdownGraceMs);
    force.unref();
    runtime.streams.closeAll();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await runtime.stop(config.shutdownGraceMs);
    await closed;
    clearTimeout(force);
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof ProvidersConfigError) {
    process.stderr.write(`quench: ${err.message}\n`);
  } else {
    process.stderr.write(
      `quench: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
    );
  }
  process.exit(1);
});
