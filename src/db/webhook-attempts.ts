/**
 * Delivery attempts: what each one did to its event (delivered, due again,
 * given up, or its webhook gone), one row per attempt for `GET
 * /webhooks/:id/deliveries`, and a line in the job's audit trail.
 */
import { and, desc, eq, inArray, isNull, ne, sql } from "drizzle-orm";
import type { Db } from "./connection.js";
import { appendEvents } from "./events.js";
import { rowsOf } from "./rows.js";
import { webhookAttempts, webhookEvents, webhooks } from "./schema.js";
import type { AttemptResult, ClaimedDelivery } from "./webhook-outbox.js";

export interface FinishedAttempt {
  delivery: Pick<ClaimedDelivery, "eventId" | "webhookId" | "attempt" | "jobId" | "type">;
  result: AttemptResult;
}

/**
 * Records finished attempts together, in one transaction of a few
 * statements however many there are (the loop batches what finished while
 * it was busy), so deliveries cost the database little beside a cancel.
 * Each moves its event on: delivered, due again at `retryAt`, or failed for
 * good; guarded by the attempt number, so a report from a claim that lapsed
 * and was taken over changes nothing. Returns the attempts that counted.
 */
export async function recordAttempts(
  db: Db,
  finished: FinishedAttempt[],
): Promise<FinishedAttempt[]> {
  if (finished.length === 0) return [];
  return db.transaction(async (tx) => {
    // The webhooks' rows first, in id order: a webhook's delete locks its row
    // and then, by cascade, its events, so taking the events first (the
    // update below) and the webhook's key later (the attempts' foreign key)
    // would deadlock with it. After a delete committed, nothing is found here.
    const hooks = [...new Set(finished.map((f) => f.delivery.webhookId))].sort();
    await tx.execute(
      sql`select 1 from ${webhooks} where ${inArray(webhooks.id, hooks)} order by ${webhooks.id} for key share`,
    );
    const values = finished.map(({ delivery: d, result: r }) => {
      const state =
        r.outcome === "delivered"
          ? "delivered"
          : r.outcome === "failed" && r.retryAt !== null
            ? "pending"
            : "failed";
      const next = r.outcome === "failed" ? r.retryAt : null;
      return sql`(${d.eventId}::text, ${d.attempt}::int, ${state}::text, ${next === null ? null : next.toISOString()}::timestamptz)`;
    });
    const moved = await rowsOf<{ id: string }>(
      tx,
      sql`
      update ${webhookEvents} e
      set state = v.state, next_attempt_at = coalesce(v.next, e.next_attempt_at)
      from (values ${sql.join(values, sql`, `)}) as v(id, attempt, state, next)
      where e.id = v.id and e.attempts = v.attempt and e.state = 'pending'
      returning e.id`,
    );
    const counted = new Set(moved.map((r) => r.id));
    const kept = finished.filter((f) => counted.has(f.delivery.eventId));
    if (kept.length === 0) return [];
    const gone = [
      ...new Set(kept.filter((f) => f.result.outcome === "gone").map((f) => f.delivery.webhookId)),
    ];
    if (gone.length > 0) {
      await tx
        .update(webhooks)
        .set({ disabledAt: sql`now()` })
        .where(and(inArray(webhooks.id, gone), isNull(webhooks.disabledAt)));
      // Nothing more goes to them: their other pending events end here too.
      await tx
        .update(webhookEvents)
        .set({ state: "failed" })
        .where(and(inArray(webhookEvents.webhookId, gone), eq(webhookEvents.state, "pending")));
    }
    await tx.insert(webhookAttempts).values(
      kept.map(({ delivery: d, result: r }) => ({
        eventId: d.eventId,
        webhookId: d.webhookId,
        attempt: d.attempt,
        statusCode: r.statusCode,
        error: r.outcome === "failed" ? r.error.slice(0, 500) : null,
        deliveredAt: r.outcome === "delivered" ? sql`now()` : null,
        nextAttemptAt: r.outcome === "failed" ? r.retryAt : null,
      })),
    );
    // The job's audit trail names each attempt too (SPEC.md section 3, events).
    await appendEvents(
      tx,
      kept.map(({ delivery: d, result: r }) => ({
        jobId: d.jobId,
        type: "webhook_delivery" as const,
        actor: "webhooks",
        data: {
          event_id: d.eventId,
          webhook_id: d.webhookId,
          event: d.type,
          attempt: d.attempt,
          outcome: r.outcome,
          status_code: r.statusCode,
        },
      })),
    );
    return kept;
  });
}

/** How long a finished event (delivered or given up) and its attempts are kept. */
export const DELIVERY_RETENTION_MS = 7 * 24 * 3_600_000;

/** Deletes finished events older than DELIVERY_RETENTION_MS with their attempts; pending ones stay. */
export async function purgeOldDeliveries(db: Db): Promise<number> {
  const rows = await db
    .delete(webhookEvents)
    .where(
      and(
        ne(webhookEvents.state, "pending"),
        sql`${webhookEvents.createdAt} < now() - (${DELIVERY_RETENTION_MS} * interval '1 millisecond')`,
      ),
    )
    .returning({ id: webhookEvents.id });
  return rows.length;
}

/** A webhook's delivery attempts, newest first (`GET /webhooks/:id/deliveries`). */
export function listAttempts(db: Db, webhookId: string, limit = 100) {
  return db
    .select({
      eventId: webhookAttempts.eventId,
      type: webhookEvents.type,
      jobId: webhookEvents.jobId,
      attempt: webhookAttempts.attempt,
      statusCode: webhookAttempts.statusCode,
      error: webhookAttempts.error,
      at: webhookAttempts.at,
      deliveredAt: webhookAttempts.deliveredAt,
      nextAttemptAt: webhookAttempts.nextAttemptAt,
    })
    .from(webhookAttempts)
    .innerJoin(webhookEvents, eq(webhookEvents.id, webhookAttempts.eventId))
    .where(eq(webhookAttempts.webhookId, webhookId))
    .orderBy(desc(webhookAttempts.id))
    .limit(limit);
}
