/**
 * The shared words of SPEC.md: job and execution statuses and the
 * transitions between them (section 2), the API's error codes with their
 * HTTP statuses, and the webhook event types (section 3). A leaf: it imports
 * nothing, so the server and the published `quench/client` both import it
 * and the client never drags in the database or the HTTP framework. The
 * store's guarded updates take their `WHERE status IN (…)` lists from here,
 * the CHECK constraints their value lists, and the tests their table.
 */

export const JOB_STATUSES = [
  "queued",
  "running",
  "completed",
  "partial",
  "failed",
  "cancelled",
  "timed_out",
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const EXECUTION_STATUSES = [
  "pending",
  "running",
  "completed",
  "failed",
  "cancelled",
  "skipped",
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

/**
 * Allowed job transitions. `running → queued` is the requeue of a job whose
 * runner died or shut down; terminal statuses have no way out.
 */
export const JOB_TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  queued: ["running", "cancelled"],
  running: ["completed", "partial", "failed", "cancelled", "timed_out", "queued"],
  completed: [],
  partial: [],
  failed: [],
  cancelled: [],
  timed_out: [],
};

/** `running → pending` resets an execution of a requeued job. */
export const EXECUTION_TRANSITIONS: Readonly<Record<ExecutionStatus, readonly ExecutionStatus[]>> =
  {
    pending: ["running", "skipped", "cancelled"],
    running: ["completed", "failed", "cancelled", "pending"],
    completed: [],
    failed: [],
    cancelled: [],
    skipped: [],
  };

export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = JOB_STATUSES.filter(
  (s) => JOB_TRANSITIONS[s].length === 0,
);

export const ACTIVE_EXECUTION_STATUSES: readonly ExecutionStatus[] = ["pending", "running"];

export function isJobStatus(value: unknown): value is JobStatus {
  return (JOB_STATUSES as readonly unknown[]).includes(value);
}

export function isTerminalJobStatus(status: JobStatus): boolean {
  return JOB_TRANSITIONS[status].length === 0;
}

/** The statuses a job may leave for `to`: the guard of the update that moves it there. */
export function jobStatusesInto(to: JobStatus): JobStatus[] {
  return JOB_STATUSES.filter((from) => JOB_TRANSITIONS[from].includes(to));
}

export function executionStatusesInto(to: ExecutionStatus): ExecutionStatus[] {
  return EXECUTION_STATUSES.filter((from) => EXECUTION_TRANSITIONS[from].includes(to));
}

/** SPEC.md section 3's error codes, each with its HTTP status. */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  not_cancellable: 409,
  not_resumable: 409,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** The webhook event types of SPEC.md section 3. */
export const WEBHOOK_EVENT_TYPES = [
  "job.completed",
  "job.partial",
  "job.failed",
  "job.cancelled",
  "job.timed_out",
  "job.stopped",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
