import type { ExecutionStatus, JobStatus } from "../vocabulary.js";

// The wire types of SPEC.md section 3, written out: the published client
// depends on nothing of the server's. The server is held to them instead:
// its views are typed with these (src/api/job-view.ts), and src/api/schemas.ts
// checks that the submit schema accepts exactly `SubmitRequest`.

export type { ErrorCode, ExecutionStatus, JobStatus } from "../vocabulary.js";

/** A JSON value, as the API carries inputs, outputs and metadata. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A failed job's or execution's reason: a stable code and a message for people. */
export interface ErrorInfo {
  code: string;
  message: string;
}

/** How the provider's own stop of remote work went (remote-queue kinds). */
export interface RemoteStop {
  requested_at: string;
  confirmed_at: string | null;
  outcome: "confirmed" | "requested" | "already_finished" | "failed";
}

/** GPU time an execution used: billed by the provider where it says, else wall clock. */
export interface ExecutionUsage {
  gpu_ms: number;
  source: "provider" | "wall_clock";
  cost_usd: number | null;
}

export interface Execution {
  id: string;
  key: string;
  provider: string;
  model: string;
  status: ExecutionStatus;
  depends_on: string[];
  started_at: string | null;
  finished_at: string | null;
  output: unknown;
  partial: boolean;
  error: ErrorInfo | null;
  remote_id: string | null;
  /** Carried over, completed, from the job this one resumes. */
  resumed: boolean;
  /** The latest structured progress report (`process`), else null. */
  progress: unknown;
  /** `gpu_check`: when nvidia-smi showed the GPU memory freed. */
  gpu_released_at: string | null;
  remote_stop: RemoteStop | null;
  usage: ExecutionUsage;
}

/** The job object of SPEC.md section 3. */
export interface Job {
  id: string;
  owner: string;
  status: JobStatus;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  deadline_at: string | null;
  cancelled_at: string | null;
  cancelled_by: string | null;
  cancel_reason: string | null;
  stopped_at: string | null;
  attempt: number;
  instance: string | null;
  error: ErrorInfo | null;
  metadata: Record<string, unknown>;
  /** Queued jobs only: 1 + the queued jobs claimed before it. */
  queue_position: number | null;
  resumed_from: string | null;
  resumed_by: string | null;
  usage: { gpu_ms: number; cost_usd: number | null };
  executions: Execution[];
}

/** One line of a job's audit trail. */
export interface JobEvent {
  at: string;
  type: string;
  actor: string | null;
  data: Record<string, unknown>;
}

/** The body of `POST /jobs`; fields with a server default are optional. */
export interface SubmitRequest {
  executions: {
    key: string;
    provider: string;
    model: string;
    input?: JsonValue;
    depends_on?: string[];
    timeout_ms?: number;
    retries?: number;
  }[];
  timeout_ms?: number;
  max_parallel?: number;
  metadata?: Record<string, JsonValue>;
  /** `jobs:admin` only: submit on behalf of this wallet. */
  owner?: string;
}

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
