import { and, eq } from "drizzle-orm";
import type { Db } from "./connection.js";
import { idempotencyKeys } from "./schema.js";

/** The same `Idempotency-Key` from the same principal with a different body (HTTP 409 `conflict`). */
export class IdempotencyConflictError extends Error {
  readonly code = "conflict";
  constructor(readonly key: string) {
    super(`Idempotency-Key ${JSON.stringify(key)} was already used with a different request body`);
    this.name = "IdempotencyConflictError";
  }
}

/** False if the principal already used the key (the caller rolls back). */
export async function insertIdempotencyKey(
  db: Db,
  idem: { principal: string; key: string; requestHash: string },
  jobId: string,
): Promise<boolean> {
  const rows = await db
    .insert(idempotencyKeys)
    .values({ principal: idem.principal, key: idem.key, requestHash: idem.requestHash, jobId })
    .onConflictDoNothing()
    .returning({ jobId: idempotencyKeys.jobId });
  return rows.length === 1;
}

export async function loadIdempotentJobId(
  db: Db,
  principal: string,
  key: string,
): Promise<{ jobId: string; requestHash: string } | undefined> {
  const [row] = await db
    .select({ jobId: idempotencyKeys.jobId, requestHash: idempotencyKeys.requestHash })
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.principal, principal), eq(idempotencyKeys.key, key)));
  return row;
}
