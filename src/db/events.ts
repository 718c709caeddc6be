import { asc, eq } from "drizzle-orm";
import type { Db } from "./connection.js";
import { storableJson } from "./json.js";
import { type JobEventRow, jobEvents } from "./schema.js";

/** The audit trail's event types (SPEC.md section 3, `GET /jobs/:id/events`). */
export type JobEventType =
  | "submitted"
  | "claimed"
  | "execution_started"
  | "execution_finished"
  | "execution_skipped"
  | "cancel_requested"
  | "stopped"
  | "requeued"
  | "timed_out"
  | "finished"
  | "retry_scheduled"
  | "remote_cancel_sent"
  | "remote_stop"
  | "resumed"
  | "webhook_delivery"
  | "gpu_released"
  | "gpu_not_released";

export interface NewJobEvent {
  jobId: string;
  type: JobEventType;
  actor?: string | null;
  data?: Record<string, unknown>;
}

/** Appends events; inside a transaction they commit or vanish with the change they record. */
export async function appendEvents(db: Db, events: NewJobEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db.insert(jobEvents).values(
    events.map((e) => ({
      jobId: e.jobId,
      type: e.type,
      actor: e.actor ?? null,
      data: storableJson(e.data ?? {}),
    })),
  );
}

export function appendEvent(db: Db, event: NewJobEvent): Promise<void> {
  return appendEvents(db, [event]);
}

/** A job's audit trail, oldest first. */
export function listEvents(db: Db, jobId: string): Promise<JobEventRow[]> {
  return db.select().from(jobEvents).where(eq(jobEvents.jobId, jobId)).orderBy(asc(jobEvents.id));
}
