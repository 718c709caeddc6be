import { getTableColumns, type InferSelectModel, type SQL } from "drizzle-orm";
import { type PgColumn, PgDialect, type PgTable } from "drizzle-orm/pg-core";
import type postgres from "postgres";
import type { Db } from "./connection.js";

/**
 * Runs raw SQL and returns its rows on either driver (postgres.js answers
 * an array, PGlite an object with `rows`). Column names come back as the
 * database spells them (snake_case), values as the driver parses them.
 */
export async function rowsOf<T>(db: Db, query: SQL): Promise<T[]> {
  const client = (db as { $client?: unknown }).$client;
  if (isPostgresJs(client)) {
    // A named prepared statement per query text and connection: parsed and
    // planned once. Through drizzle's execute(), postgres.js would describe
    // an unnamed one before every run: two round trips per statement.
    const { sql: text, params } = dialect.sqlToQuery(query);
    return (await client.unsafe(text, params as never[], { prepare: true })) as unknown as T[];
  }
  const result = await db.execute(query);
  return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as T[];
}

const dialect = new PgDialect();

/** A jsonb value of a raw row, whichever way the driver hands it over: parsed, or as text. */
export function jsonbValue(value: unknown): unknown {
  return typeof value === "string" ? JSON.parse(value) : value;
}

/** Each table's columns, listed once: `rowAs` runs for every row the runner reads. */
const columnLists = new WeakMap<PgTable, [string, PgColumn][]>();

function columnsOf(table: PgTable): [string, PgColumn][] {
  let list = columnLists.get(table);
  if (list === undefined) {
    list = Object.entries(getTableColumns(table));
    columnLists.set(table, list);
  }
  return list;
}

/** postgres.js's client (`$client` of a drizzle database on it); inside a transaction there is none. */
function isPostgresJs(client: unknown): client is postgres.Sql {
  return (
    typeof client === "function" && typeof (client as { unsafe?: unknown }).unsafe === "function"
  );
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
  for (const [key, column] of columnsOf(table)) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as InferSelectModel<T>;
}
