import type { z } from "zod";
import type { eventView, executionView, jobView } from "../api/job-view.js";
import type { submitSchema } from "../api/schemas.js";
import type { JobStatus } from "../db/statuses.js";

// The wire types of SPEC.md section 3, taken from the server's own views and
// schemas, so the client cannot drift from what the server sends and accepts.

export type { ExecutionStatus, JobStatus } from "../db/statuses.js";
export type Job = ReturnType<typeof jobView>;
export type Execution = ReturnType<typeof executionView>;
export type JobEvent = ReturnType<typeof eventView>;
/** The body of `POST /jobs`; fields with a server default are optional. */
export type SubmitRequest = z.input<typeof submitSchema>;

export interface JobPage {
  jobs: Job[];
  next_cursor: string | null;
}

export interface CancelResponse {
  ok: true;
  job_id: string;
  previous_status: JobStatus;
  new_status: "cancelled";
  context_cancelled: boolean;
  executions_cancelled: number;
  cancelled_at: string;
  stopped_at: string | null;
}

export interface BulkCancelResponse {
  results: {
    job_id: string;
    ok: boolean;
    previous_status: JobStatus | null;
    error?: { code: string; message: string };
  }[];
  cancelled: number;
}

export interface Health {
  status: "ok" | "draining" | "unavailable";
  db: "ok" | "error";
  instance: string;
  role: string;
  running_jobs: number;
}

export interface Session {
  token: string;
  address: `0x${string}`;
  expires_at: string;
}

/** One event of `GET /jobs/:id/stream`. */
export type StreamEvent =
  | { event: "job"; data: Job }
  | { event: "execution"; data: Execution }
  | {
      event: "progress";
      data: { execution_id: string; key: string; output: unknown; progress: unknown };
    }
  | { event: "end"; data: { status: JobStatus } };
