import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { type PgliteThread, startPgliteThread } from "./pglite-thread.js";
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
  /** The embedded database's thread, for its listen(); undefined on postgres. */
  readonly pglite?: PgliteThread;
  /** A one-connection client without the statement timeout, for migrations (postgres only). */
  readonly openMigrationClient?: () => postgres.Sql;
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

/**
 * Bounds on every wait for a postgres.js connection or query (DESIGN.md:
 * "no unbounded wait on the database"). While the server is unreachable a
 * query fails within `connectTimeoutS` instead of queueing for the whole
 * outage, and once it is back the pool reconnects within `reconnectMaxS`:
 * postgres.js's default backoff grows to 20 s after a few failed connects,
 * which kept instances answering errors for up to 20 s after the database
 * had returned. The statement timeout bounds a query stuck on a lock or a
 * slow server; migrations run on a connection of their own without it.
 */
export const DB_BOUNDS = {
  connectTimeoutS: 3,
  reconnectMaxS: 0.5,
  statementTimeoutMs: 15_000,
  idleInTransactionTimeoutMs: 30_000,
} as const;

/** Jittered doubling from 25 ms to `reconnectMaxS`, in seconds, as postgres.js's `backoff` wants. */
function reconnectBackoff(attempt: number): number {
  return Math.min(0.025 * 2 ** attempt, DB_BOUNDS.reconnectMaxS) * (0.5 + Math.random() / 2);
}

function postgresClient(url: string, max: number, statementTimeoutMs: number): postgres.Sql {
  return postgres(url, {
    max,
    connect_timeout: DB_BOUNDS.connectTimeoutS,
    backoff: reconnectBackoff,
    idle_timeout: 60,
    onnotice: () => {},
    connection: {
      application_name: "quench",
      statement_timeout: statementTimeoutMs,
      idle_in_transaction_session_timeout: DB_BOUNDS.idleInTransactionTimeoutMs,
    },
  });
}

async function openPostgres(url: string, max: number): Promise<Database> {
  const client = postgresClient(url, max, DB_BOUNDS.statementTimeoutMs);
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  const database: Database = {
    db,
    driver: "postgres",
    postgresClient: client,
    openMigrationClient: () => postgresClient(url, 1, 0),
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
  const client = await startPgliteThread(dataDir);
  // drizzle's PGlite driver calls only query() and transaction(), which the thread answers.
  const db = drizzlePglite({ client: client as never, schema }) as unknown as Db;
  return {
    db,
    driver: "pglite",
    pglite: client,
    async ping() {
      await client.query("select 1");
    },
    async close() {
      await client.close();
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
  const client = database.openMigrationClient?.();
  if (client === undefined) throw new Error("postgres driver without a migration client");
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(drizzlePostgres(client, { schema }), {
      migrationsFolder: MIGRATIONS_FOLDER,
    });
  } finally {
    // The lock is the session's: ending the one connection releases it, even after an error.
    await client.end({ timeout: 5 }).catch(() => {});
  }
}

/** `now()` of the database: one clock for every instance. */
export const dbNow = sql`now()`;
