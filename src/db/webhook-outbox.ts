/**
 * The webhook outbox (SPEC.md section 3, Webhooks). `enqueueJobEvent` runs
 * inside the transaction of the state change it announces, so an event
 * exists exactly when its change committed. Delivery claims due rows with
 * `FOR UPDATE SKIP LOCKED` from any instance; a claim pushes
 * `next_attempt_at` past the attempt's timeout, so a claimer that dies
 * mid-attempt only delays the next one.
 */
import { and, eq, inArray, isNull, type SQL, sql } from "drizzle-orm";
import type { WebhookEventType } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { storableJson } from "./json.js";
import { jsonbValue, rowsOf } from "./rows.js";
import { webhookEvents, webhooks } from "./schema.js";

/**
 * One outbox row per live webhook that covers the job's owner and wants
 * `type`, in one statement (none when nobody listens). Call it inside the
 * transition's transaction.
 */
export async function enqueueJobEvent(
  tx: Db,
  event: { jobId: string; owner: string; type: WebhookEventType; extra?: Record<string, unknown> },
): Promise<void> {
  await tx.execute(
    outboxInsert(sql`select ${event.jobId}::uuid as job_id, ${event.owner}::text as owner,
      ${event.type}::text as type, ${JSON.stringify(storableJson(event.extra ?? {}))}::jsonb as extra`),
  );
}

/**
 * The outbox insert for the events `source` yields (columns `job_id`,
 * `owner`, `type`, `extra`): the one place outbox rows are made, used alone
 * (`enqueueJobEvent`) or as a CTE of the statement that makes the change
 * (`finishJob`), so the event commits exactly with it.
 */
export function outboxInsert(source: SQL): SQL {
  return sql`
    insert into ${webhookEvents} (id, webhook_id, job_id, type, extra)
    select 'msg_' || replace(gen_random_uuid()::text, '-', ''), w.id, e.job_id, e.type, e.extra
    from (${source}) e
    join ${webhooks} w
      on w.disabled_at is null
     and (w.owner is null or w.owner = e.owner)
     and w.events @> jsonb_build_array(e.type)`;
}

export interface ClaimedDelivery {
  eventId: string;
  webhookId: string;
  jobId: string;
  type: WebhookEventType;
  extra: Record<string, unknown>;
  createdAt: Date;
  /** Null until the first attempt freezes it. */
  body: string | null;
  /** This attempt's number, 1 for the first. */
  attempt: number;
  url: string;
  secret: string;
}

/**
 * Claims up to `limit` due events of live webhooks, oldest due first, and
 * holds each for `holdMs` (longer than an attempt may take): another
 * instance takes it only if this one never reports the attempt. No webhook
 * gets more than `perWebhook` attempts in flight here, counting `busy` (its
 * attempts already in flight), so one receiver that hangs holds at most that
 * many of the loop's slots and the others' events still go out.
 */
export async function claimDeliveries(
  db: Db,
  claim: { limit: number; holdMs: number; perWebhook: number; busy: ReadonlyMap<string, number> },
): Promise<ClaimedDelivery[]> {
  if (claim.limit <= 0) return [];
  return db.transaction(async (tx) => {
    const due = await rowsOf<{ id: string; webhook_id: string }>(
      tx,
      sql`
      select e.id, e.webhook_id from ${webhookEvents} e
      join ${webhooks} w on w.id = e.webhook_id
      where e.state = 'pending' and e.next_attempt_at <= now() and w.disabled_at is null
      order by e.next_attempt_at
      limit ${claim.limit * 4}
      for update of e skip locked`,
    );
    const taken = new Map(claim.busy);
    const picked: string[] = [];
    for (const row of due) {
      if (picked.length >= claim.limit) break;
      const inFlight = taken.get(row.webhook_id) ?? 0;
      if (inFlight >= claim.perWebhook) continue;
      taken.set(row.webhook_id, inFlight + 1);
      picked.push(row.id);
    }
    if (picked.length === 0) return [];
    const rows = await rowsOf<{
      id: string;
      webhook_id: string;
      job_id: string;
      type: WebhookEventType;
      extra: Record<string, unknown> | string;
      created_at: Date | string;
      body: string | null;
      attempts: number;
      url: string;
      secret: string;
    }>(
      tx,
      sql`
      update ${webhookEvents} e
      set attempts = e.attempts + 1,
          next_attempt_at = now() + (${claim.holdMs} * interval '1 millisecond')
      from ${webhooks} w
      where e.id in (${sql.join(
        picked.map((id) => sql`${id}`),
        sql`, `,
      )}) and w.id = e.webhook_id
      returning e.id, e.webhook_id, e.job_id, e.type, e.extra, e.created_at, e.body, e.attempts,
                w.url, w.secret`,
    );
    return rows.map((r) => ({
      eventId: r.id,
      webhookId: r.webhook_id,
      jobId: r.job_id,
      type: r.type,
      extra: jsonbValue(r.extra) as Record<string, unknown>,
      createdAt: new Date(r.created_at),
      body: r.body,
      attempt: r.attempts,
      url: r.url,
      secret: r.secret,
    }));
  });
}

/**
 * Keeps the first attempt's body, the one every retry sends, for events that
 * have none yet (events of one job's one change share it). Returns the body
 * each event will send.
 */
export async function freezeBodies(
  db: Db,
  eventIds: string[],
  body: string,
): Promise<Map<string, string>> {
  const frozen = new Map<string, string>();
  if (eventIds.length === 0) return frozen;
  await db
    .update(webhookEvents)
    .set({ body })
    .where(and(inArray(webhookEvents.id, eventIds), isNull(webhookEvents.body)));
  const rows = await db
    .select({ id: webhookEvents.id, body: webhookEvents.body })
    .from(webhookEvents)
    .where(inArray(webhookEvents.id, eventIds));
  for (const row of rows) frozen.set(row.id, row.body ?? body);
  return frozen;
}

export type AttemptResult =
  | { outcome: "delivered"; statusCode: number }
  /** Retried at `retryAt`, or given up when that is past the event's retry window. */
  | { outcome: "failed"; statusCode: number | null; error: string; retryAt: Date | null }
  /** The receiver answered 410: the webhook is disabled, nothing more is sent to it. */
  | { outcome: "gone"; statusCode: 410 };

/** Events still to deliver (the `quench_webhook_backlog` gauge). */
export async function outboxBacklog(db: Db): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(webhookEvents)
    .where(eq(webhookEvents.state, "pending"));
  return Number(row?.n ?? 0);
}
