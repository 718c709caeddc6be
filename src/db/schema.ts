import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import {
  EXECUTION_STATUSES,
  type ExecutionStatus,
  JOB_STATUSES,
  type JobStatus,
  type WebhookEventType,
} from "../vocabulary.js";

/** An execution's remote stop, as SPEC.md section 3 shows it (ISO times). */
export interface RemoteStopRecord {
  requested_at: string;
  confirmed_at: string | null;
  outcome: "confirmed" | "requested" | "already_finished" | "failed";
}

/** An execution's GPU time: billed by the provider where it says, else wall clock. */
export interface UsageRecord {
  gpu_ms: number;
  source: "provider" | "wall_clock";
  cost_usd: number | null;
}

export interface ErrorInfo {
  code: string;
  message: string;
}

// Millisecond precision: a JS Date round-trips exactly, so cursors built from one are exact.
const tz = (name: string) => timestamp(name, { withTimezone: true, mode: "date", precision: 3 });

export const jobs = pgTable(
  "jobs",
  {
    id: uuid("id").primaryKey(),
    owner: text("owner").notNull(),
    status: text("status").$type<JobStatus>().notNull().default("queued"),
    createdAt: tz("created_at").notNull().defaultNow(),
    startedAt: tz("started_at"),
    finishedAt: tz("finished_at"),
    deadlineAt: tz("deadline_at"),
    timeoutMs: integer("timeout_ms").notNull(),
    maxParallel: integer("max_parallel").notNull(),
    cancelledAt: tz("cancelled_at"),
    cancelledBy: text("cancelled_by"),
    cancelReason: text("cancel_reason"),
    stoppedAt: tz("stopped_at"),
    attempt: integer("attempt").notNull().default(0),
    instance: text("instance"),
    leaseExpiresAt: tz("lease_expires_at"),
    error: jsonb("error").$type<ErrorInfo>(),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    /** The stopped job this one continues (SPEC.md section 3, resume). */
    resumedFrom: uuid("resumed_from"),
    /** The job that continues this one; set once (a job is resumed at most once). */
    resumedBy: uuid("resumed_by"),
  },
  (t) => [
    check("jobs_status_check", sql.raw(`status in (${sqlList(JOB_STATUSES)})`)),
    check("jobs_attempt_check", sql`${t.attempt} >= 0`),
    check("jobs_timeout_ms_check", sql`${t.timeoutMs} > 0`),
    check("jobs_max_parallel_check", sql`${t.maxParallel} > 0`),
    // The claim query: oldest queued first.
    index("jobs_queued_idx").on(t.createdAt, t.id).where(sql`status = 'queued'`),
    // Lease renewal and the reaper: running jobs by lease expiry.
    index("jobs_running_lease_idx").on(t.leaseExpiresAt).where(sql`status = 'running'`),
    // The reaper: cancelled jobs whose holder has not reported the stop, by lease expiry.
    index("jobs_stopping_lease_idx")
      .on(t.leaseExpiresAt)
      .where(sql`status = 'cancelled' and stopped_at is null`),
    // A principal's jobs, newest first (cursor pagination on created_at, id).
    index("jobs_owner_created_idx").on(t.owner, t.createdAt.desc(), t.id.desc()),
    // An admin's view of every job, newest first.
    index("jobs_created_idx").on(t.createdAt.desc(), t.id.desc()),
  ],
);

export const executions = pgTable(
  "executions",
  {
    id: uuid("id").primaryKey(),
    jobId: uuid("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    position: integer("position").notNull(),
    key: text("key").notNull(),
    provider: text("provider").notNull(),
    model: text("model").notNull(),
    input: jsonb("input").$type<unknown>().notNull(),
    dependsOn: jsonb("depends_on").$type<string[]>().notNull().default([]),
    timeoutMs: integer("timeout_ms"),
    retries: integer("retries").notNull().default(0),
    status: text("status").$type<ExecutionStatus>().notNull().default("pending"),
    startedAt: tz("started_at"),
    finishedAt: tz("finished_at"),
    output: jsonb("output").$type<unknown>(),
    partial: boolean("partial").notNull().default(false),
    error: jsonb("error").$type<ErrorInfo>(),
    remoteId: text("remote_id"),
    /** Remote-queue kinds: how the provider's own stop went (SPEC.md section 3, `remote_stop`). */
    remoteStop: jsonb("remote_stop").$type<RemoteStopRecord>(),
    /** GPU time the execution used, and its cost (SPEC.md section 3, `usage`); null until it ended. */
    usage: jsonb("usage").$type<UsageRecord>(),
    /** Copied, completed, from the job this one resumes: never run again. */
    resumed: boolean("resumed").notNull().default(false),
    /** The latest structured progress report (`process`: a stdout line `{"progress": …}`). */
    progress: jsonb("progress").$type<unknown>(),
    /** `gpu_check`: when nvidia-smi showed none of the execution's processes holding GPU memory. */
    gpuReleasedAt: tz("gpu_released_at"),
  },
  (t) => [
    check("executions_status_check", sql.raw(`status in (${sqlList(EXECUTION_STATUSES)})`)),
    check("executions_retries_check", sql`${t.retries} >= 0`),
    uniqueIndex("executions_job_key_idx").on(t.jobId, t.key),
  ],
);

export const jobEvents = pgTable(
  "job_events",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    jobId: uuid("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    at: tz("at").notNull().defaultNow(),
    type: text("type").notNull(),
    actor: text("actor"),
    data: jsonb("data").$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [index("job_events_job_idx").on(t.jobId, t.id)],
);

export const authNonces = pgTable(
  "auth_nonces",
  {
    nonce: text("nonce").primaryKey(),
    createdAt: tz("created_at").notNull().defaultNow(),
    expiresAt: tz("expires_at").notNull(),
  },
  (t) => [index("auth_nonces_expires_idx").on(t.expiresAt)],
);

export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    principal: text("principal").notNull(),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    jobId: uuid("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    createdAt: tz("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.principal, t.key] })],
);

/**
 * Rate-limit counters shared by every instance (rate-limiter-flexible's
 * RateLimiterDrizzle owns the rows: key, points used, window end).
 */
export const rateLimits = pgTable(
  "rate_limits",
  {
    key: text("key").primaryKey(),
    points: integer("points").notNull().default(0),
    expire: tz("expire"),
  },
  (t) => [index("rate_limits_expire_idx").on(t.expire)],
);

/** Where a principal asked to be told of its jobs' ends (SPEC.md section 3, Webhooks). */
export const webhooks = pgTable(
  "webhooks",
  {
    id: uuid("id").primaryKey(),
    /** Whose jobs it covers; null (jobs:admin only) for every job. */
    owner: text("owner"),
    /** The principal that registered it: it alone (or an admin) sees and deletes it. */
    createdBy: text("created_by").notNull(),
    url: text("url").notNull(),
    events: jsonb("events").$type<WebhookEventType[]>().notNull(),
    secret: text("secret").notNull(),
    createdAt: tz("created_at").notNull().defaultNow(),
    /** Set by DELETE or by a receiver's 410: nothing more is sent to it. */
    disabledAt: tz("disabled_at"),
  },
  (t) => [index("webhooks_owner_idx").on(t.owner).where(sql`disabled_at is null`)],
);

/**
 * The outbox: one row per event and webhook, written in the transaction of
 * the state change it announces. Any instance claims due rows (`FOR UPDATE
 * SKIP LOCKED`, pushing `next_attempt_at` past the attempt's timeout as a
 * claim lease), so a crash mid-delivery only delays the next attempt.
 */
export const webhookEvents = pgTable(
  "webhook_events",
  {
    /** The Standard Webhooks `webhook-id`: the same across the event's retries. */
    id: text("id").primaryKey(),
    webhookId: uuid("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    jobId: uuid("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    type: text("type").$type<WebhookEventType>().notNull(),
    /** Facts of the change that the job object does not hold (`cancel_to_stop_ms`). */
    extra: jsonb("extra").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: tz("created_at").notNull().defaultNow(),
    /** The body, frozen at the first attempt so every retry sends the same bytes. */
    body: text("body"),
    state: text("state").$type<"pending" | "delivered" | "failed">().notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: tz("next_attempt_at").notNull().defaultNow(),
  },
  (t) => [
    check("webhook_events_state_check", sql`${t.state} in ('pending', 'delivered', 'failed')`),
    index("webhook_events_due_idx").on(t.nextAttemptAt).where(sql`state = 'pending'`),
  ],
);

/** One row per delivery attempt (`GET /webhooks/:id/deliveries`). */
export const webhookAttempts = pgTable(
  "webhook_attempts",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: text("event_id")
      .notNull()
      .references(() => webhookEvents.id, { onDelete: "cascade" }),
    webhookId: uuid("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    /** The receiver's status; null when it did not answer (timeout, refused, unsafe address). */
    statusCode: integer("status_code"),
    error: text("error"),
    at: tz("at").notNull().defaultNow(),
    deliveredAt: tz("delivered_at"),
    nextAttemptAt: tz("next_attempt_at"),
  },
  (t) => [index("webhook_attempts_webhook_idx").on(t.webhookId, t.id.desc())],
);

export type JobRow = typeof jobs.$inferSelect;
export type ExecutionRow = typeof executions.$inferSelect;
export type JobEventRow = typeof jobEvents.$inferSelect;
export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookEventRow = typeof webhookEvents.$inferSelect;

/** `'a', 'b'` for a CHECK constraint; the values are the constants above, never input. */
export function sqlList(values: readonly string[]): string {
  return values.map((v) => `'${v}'`).join(", ");
}
