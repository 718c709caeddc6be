import { randomBytes } from "node:crypto";
import { eq, lt, sql } from "drizzle-orm";
import type { Db } from "./connection.js";
import { authNonces } from "./schema.js";

/** Issues a SIWE nonce (EIP-4361: alphanumeric, at least 8 characters) valid for `ttlMs`. */
export async function createNonce(
  db: Db,
  ttlMs: number,
): Promise<{ nonce: string; expiresAt: Date }> {
  const nonce = randomBytes(16).toString("hex");
  const [row] = await db
    .insert(authNonces)
    .values({ nonce, expiresAt: sql`now() + (${ttlMs} * interval '1 millisecond')` })
    .returning({ expiresAt: authNonces.expiresAt });
  if (row === undefined) throw new Error("nonce insert returned nothing");
  return { nonce, expiresAt: row.expiresAt };
}

export type NonceOutcome = "ok" | "unknown" | "expired";

/**
 * Uses a nonce up, atomically: one DELETE, so of two sign-ins racing with the
 * same nonce exactly one gets "ok"; a replay finds it gone ("unknown").
 */
export async function consumeNonce(db: Db, nonce: string): Promise<NonceOutcome> {
  const [row] = await db
    .delete(authNonces)
    .where(eq(authNonces.nonce, nonce))
    .returning({ valid: sql<boolean>`${authNonces.expiresAt} > now()` });
  if (row === undefined) return "unknown";
  return row.valid ? "ok" : "expired";
}

/** Deletes nonces that expired unused. Returns how many. */
export async function purgeExpiredNonces(db: Db): Promise<number> {
  const rows = await db
    .delete(authNonces)
    .where(lt(authNonces.expiresAt, sql`now()`))
    .returning({ nonce: authNonces.nonce });
  return rows.length;
}
