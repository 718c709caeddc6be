import { lt, sql } from "drizzle-orm";
import type { Db } from "./connection.js";
import { rateLimits } from "./schema.js";

/** Deletes rate-limit counters whose window ended over a minute ago; returns how many. */
export async function deleteExpiredRateLimits(db: Db): Promise<number> {
  const rows = await db
    .delete(rateLimits)
    .where(lt(rateLimits.expire, sql`now() - interval '1 minute'`))
    .returning({ key: rateLimits.key });
  return rows.length;
}
