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
  sqlList,
} from "./statuses.js";

/** What a failed job or execution records: a stable code and a human message. */
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

export type JobRow = typeof jobs.$inferSelect;
export type ExecutionRow = typeof executions.$inferSelect;
export type JobEventRow = typeof jobEvents.$inferSelect;
