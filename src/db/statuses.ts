/**
 * The statuses of SPEC.md section 2 and the transitions between them. The
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

/** `'a', 'b'` for a CHECK constraint; the values are the constants above, never input. */
export function sqlList(values: readonly string[]): string {
  return values.map((v) => `'${v}'`).join(", ");
}
