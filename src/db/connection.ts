import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import * as schema from "./schema.js";

/** The query builder both drivers share; store modules take it as their port. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export type DriverName = "pglite" | "postgres";

/**
 * One open database. The driver differences stay behind this interface: use
 * the query builder (`db`), which maps rows alike on both drivers; raw
 * `db.execute` results differ (row container, bigint as string on
 * postgres.js, timestamps as strings) and belong only inside src/db/.
 */
export interface Database {
  readonly db: Db;
  readonly driver: DriverName;
  /** Throws if the database does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** The postgres.js client, for LISTEN/NOTIFY; undefined on PGlite. */
  readonly postgresClient?: postgres.Sql;
  /** The PGlite instance, for its listen(); undefined on postgres. */
  readonly pglite?: PGlite;
}

export interface OpenOptions {
  /** postgres://… to use a real server; otherwise PGlite. */
  databaseUrl?: string | undefined;
  /** PGlite's data directory; `null` keeps the database in memory. */
  dataDir?: string | null;
  /** Pool size for postgres.js. */
  maxConnections?: number;
}

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));

/** Any constant works; it only has to be the same for every quench instance. */
const MIGRATION_LOCK_KEY = 0x71_75_65_6e; // "quen"

export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.maxConnections ?? 10);
  return openPglite(options.dataDir ?? null);
}

async function openPostgres(url: string, max: number): Promise<Database> {
  const client = postgres(url, {
    max,
    connect_timeout: 10,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: "quench" },
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  const database: Database = {
    db,
    driver: "postgres",
    postgresClient: client,
    async ping() {
      await client`select 1`;
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
  return database;
}

async function openPglite(dataDir: string | null): Promise<Database> {
  if (dataDir !== null) await mkdir(dataDir, { recursive: true });
  const client = dataDir === null ? new PGlite() : new PGlite(dataDir);
  await client.waitReady;
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    db,
    driver: "pglite",
    pglite: client,
    async ping() {
      await client.query("select 1");
    },
    async close() {
      if (!client.closed) await client.close();
    },
  };
}

/**
 * Applies the migrations in `drizzle/`. On a server, instances starting
 * together take turns under an advisory lock, so no two run the same DDL.
 */
export async function migrateDatabase(database: Database): Promise<void> {
  if (database.driver === "pglite") {
    await migratePglite(database.db as never, { migrationsFolder: MIGRATIONS_FOLDER });
    return;
  }
  const client = database.postgresClient;
  if (client === undefined) throw new Error("postgres driver without a client");
  const lock = await client.reserve();
  try {
    await lock`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(database.db as never, { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await lock`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.catch(() => {});
    lock.release();
  }
}

/** `now()` of the database: one clock for every instance. */
export const dbNow = sql`now()`;
