import { join } from "node:path";
import { serve } from "@hono/node-server";
import { createApp } from "./api/app.js";
import { ConfigError, loadConfig } from "./config.js";
import { migrateDatabase, openDatabase } from "./db/connection.js";
import { createLogger } from "./logger.js";
import { createJobContextManager } from "./runner/job-context-manager.js";

/**
 * `npm start`: configuration, database and migrations, then the HTTP server.
 * SIGTERM/SIGINT drain in two stages (graphile-worker's shape): stop taking
 * work and answer `Connection: close`, then force-close what is left on an
 * unref'd timer at SHUTDOWN_GRACE_MS; the process exits 0.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, instance: config.instanceId });
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: join(config.dataDir, "pglite"),
  });
  await migrateDatabase(database);
  logger.info({ driver: database.driver, role: config.role }, "database ready");

  const manager = createJobContextManager();
  let draining = false;
  const app = createApp({
    database,
    logger,
    instance: config.instanceId,
    role: config.role,
    runningJobs: () => manager.count(),
    isDraining: () => draining,
  });
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
    await new Promise<void>((resolve) => server.close(() => resolve()));
    clearTimeout(force);
    await database.close();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`quench: ${err.message}\n`);
  } else {
    process.stderr.write(
      `quench: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
    );
  }
  process.exit(1);
});
