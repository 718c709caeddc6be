import { getTableColumns, type InferSelectModel, type SQL } from "drizzle-orm";
import type { PgTable } from "drizzle-orm/pg-core";
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

/**
 * A raw row of `table` (from `returning *`, or `to_jsonb(row)`) as drizzle's
 * own queries return it: camelCase keys, each value mapped by its column
 * (timestamps to Dates, JSON parsed). Lets one hand-written statement (a
 * data-modifying CTE) stand in for several drizzle ones without a second
 * row shape.
 */
export function rowAs<T extends PgTable>(
  table: T,
  raw: Record<string, unknown>,
): InferSelectModel<T> {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(getTableColumns(table))) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as InferSelectModel<T>;
}
