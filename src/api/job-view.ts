import type { Execution, Job, JobEvent } from "../client/types.js";
import type { JobWithExecutions } from "../db/jobs.js";
import type { ExecutionRow, JobEventRow, UsageRecord } from "../db/schema.js";
import { jobUsage } from "../runner/usage.js";

/** An execution that has not used any GPU time yet (SPEC.md's default). */
const NO_USAGE: UsageRecord = { gpu_ms: 0, source: "wall_clock", cost_usd: null };

/** The job object of SPEC.md section 3: snake_case, ISO-8601 UTC timestamps. */
export function jobView(job: JobWithExecutions & { queuePosition?: number | null }): Job {
  return {
    id: job.id,
    owner: job.owner,
    status: job.status,
    created_at: job.createdAt.toISOString(),
    started_at: iso(job.startedAt),
    finished_at: iso(job.finishedAt),
    deadline_at: iso(job.deadlineAt),
    cancelled_at: iso(job.cancelledAt),
    cancelled_by: job.cancelledBy,
    cancel_reason: job.cancelReason,
    stopped_at: iso(job.stoppedAt),
    attempt: job.attempt,
    instance: job.instance,
    error: job.error,
    metadata: job.metadata,
    queue_position: job.status === "queued" ? (job.queuePosition ?? null) : null,
    resumed_from: job.resumedFrom,
    resumed_by: job.resumedBy,
    usage: jobUsage(job.executions),
    executions: job.executions.map(executionView),
  };
}

export function executionView(e: ExecutionRow): Execution {
  return {
    id: e.id,
    key: e.key,
    provider: e.provider,
    model: e.model,
    status: e.status,
    depends_on: e.dependsOn,
    started_at: iso(e.startedAt),
    finished_at: iso(e.finishedAt),
    output: e.output ?? null,
    partial: e.partial,
    error: e.error,
    remote_id: e.remoteId,
    resumed: e.resumed,
    progress: e.progress ?? null,
    gpu_released_at: iso(e.gpuReleasedAt),
    remote_stop: e.remoteStop ?? null,
    usage: e.usage ?? NO_USAGE,
  };
}

export function eventView(e: JobEventRow): JobEvent {
  return { at: e.at.toISOString(), type: e.type, actor: e.actor, data: e.data };
}

export function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}
