import type { SQL } from "drizzle-orm";
import type { Db } from "./connection.js";

/**
 * Runs raw SQL and returns its rows on either driver (postgres.js answers
 * an array, PGlite an object with `rows`). Column names come back as the
 * database spells them (snake_case), values as the driver parses them.
 */
export async function rowsOf<T>(db: Db, query: SQL): Promise<T[]> {
  const result = await db.execute(query);
  return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as T[];
}
