import { randomUUID } from "node:crypto";
import { asc, eq } from "drizzle-orm";
import type { WebhookEventType } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { type WebhookRow, webhooks } from "./schema.js";

export interface NewWebhook {
  owner: string | null;
  createdBy: string;
  url: string;
  events: WebhookEventType[];
  secret: string;
}

export async function insertWebhook(db: Db, webhook: NewWebhook): Promise<WebhookRow> {
  const [row] = await db
    .insert(webhooks)
    .values({ id: randomUUID(), ...webhook })
    .returning();
  if (row === undefined) throw new Error("insert returned no webhook");
  return row;
}

/** Webhooks registered by `createdBy` (every one when undefined: an admin), oldest first. */
export function listWebhooks(db: Db, createdBy: string | undefined): Promise<WebhookRow[]> {
  return db
    .select()
    .from(webhooks)
    .where(createdBy === undefined ? undefined : eq(webhooks.createdBy, createdBy))
    .orderBy(asc(webhooks.createdAt), asc(webhooks.id));
}

export async function getWebhook(db: Db, id: string): Promise<WebhookRow | undefined> {
  const [row] = await db.select().from(webhooks).where(eq(webhooks.id, id));
  return row;
}

/** Deletes the webhook and its pending events and attempt history (cascade). */
export async function deleteWebhook(db: Db, id: string): Promise<boolean> {
  const rows = await db.delete(webhooks).where(eq(webhooks.id, id)).returning({ id: webhooks.id });
  return rows.length > 0;
}
