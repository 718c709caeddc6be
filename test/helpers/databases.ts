import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll } from "vitest";
import {
  type Database,
  type DriverName,
  migrateDatabase,
  openDatabase,
} from "../../src/db/connection.js";

/** PGlite always; the real server too when DATABASE_URL is set (CI sets it). */
export const DRIVERS: DriverName[] = process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];

export interface TestDatabase {
  database: Database;
  /** postgres://… of the fresh database (undefined on PGlite). */
  url: string | undefined;
  /** Another independent connection pool to the same database (postgres only). */
  openAnother(): Promise<Database>;
  /** Closes every connection and drops the database. */
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database for one test file: in-memory PGlite, or a new
 * database on the server named `quench_test_<random>`, dropped afterwards.
 */
export async function createTestDatabase(driver: DriverName): Promise<TestDatabase> {
  if (driver === "pglite") {
    const database = await openDatabase({ dataDir: null });
    await migrateDatabase(database);
    return {
      database,
      url: undefined,
      openAnother: () => Promise.reject(new Error("PGlite is a single connection")),
      drop: () => database.close(),
    };
  }
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) throw new Error("DATABASE_URL is not set");
  const name = `quench_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const opened: Database[] = [];
  const open = async () => {
    const db = await openDatabase({ databaseUrl: url.toString() });
    opened.push(db);
    return db;
  };
  const database = await open();
  await migrateDatabase(database);
  return {
    database,
    url: url.toString(),
    openAnother: open,
    async drop() {
      await Promise.all(opened.map((db) => db.close()));
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/**
 * A fresh database for the enclosing `describe` block, handed to `onReady`
 * before its tests run and dropped after them.
 */
export function useTestDatabase(driver: DriverName, onReady: (t: TestDatabase) => void): void {
  let t: TestDatabase | undefined;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
    onReady(t);
  });
  afterAll(() => t?.drop());
}

/**
 * The two sides of a race, for the enclosing `describe` block: a fresh
 * database (`left`) and a second connection pool on the same server
 * (`right`); on PGlite both are the one embedded database.
 */
export function useRaceSides(
  driver: DriverName,
  onReady: (sides: {
    left: Database;
    right: Database;
    /** A further pool on the same server (postgres only). */
    another: () => Promise<Database>;
  }) => void,
): void {
  let t: TestDatabase | undefined;
  useTestDatabase(driver, (fresh) => {
    t = fresh;
  });
  beforeAll(async () => {
    if (t === undefined) throw new Error("the test database was not created");
    const fresh = t;
    onReady({
      left: fresh.database,
      right: driver === "postgres" ? await fresh.openAnother() : fresh.database,
      another: () => fresh.openAnother(),
    });
  });
}
