import { join } from "node:path";
import { ConfigError, loadConfig } from "./config.js";
import { migrateDatabase, openDatabase } from "./db/connection.js";

/** `npm run migrate`: applies drizzle/ to DATABASE_URL, or to the embedded database in DATA_DIR. */
async function main(): Promise<void> {
  const config = loadConfig();
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: join(config.dataDir, "pglite"),
  });
  try {
    await migrateDatabase(database);
    process.stdout.write(`quench: migrations applied (${database.driver})\n`);
  } finally {
    await database.close();
  }
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`quench: migrate failed: ${message}\n`);
  process.exit(1);
});
