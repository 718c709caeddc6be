import { appendEvent } from "../db/events.js";
import { setGpuReleased } from "../db/executions.js";
import type { ExecutionRow } from "../db/schema.js";
import { retryWhileUnavailable } from "../db/unavailable.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { GpuRelease } from "../providers/nvidia-smi.js";
import { createBackgroundWrites, RECORD_RETRY_MS } from "./background-writes.js";
import type { JobFeed } from "./job-feed.js";

/**
 * Where a `gpu_check` execution's GPU release is recorded once nvidia-smi
 * has answered (SPEC.md section 4, GPU release): `gpu_released_at` and a
 * `gpu_released` event, or a `gpu_not_released` event naming the pids and
 * MiB still held (warn, counted in `quench_gpu_not_released_total`). It runs
 * after the job's own stop was reported: nothing here delays a cancel.
 */
export function createGpuReleases(deps: {
  db: Parameters<typeof setGpuReleased>[0];
  instance: string;
  feed: JobFeed;
  metrics: Metrics;
  logger: Logger;
}) {
  const writes = createBackgroundWrites();

  async function write(exec: ExecutionRow, release: GpuRelease & { pids: number[] }) {
    const durable = <T>(op: () => Promise<T>) => retryWhileUnavailable(op, RECORD_RETRY_MS);
    if (release.released) {
      const status = await durable(() => setGpuReleased(deps.db, exec.id, release.at));
      await durable(() =>
        appendEvent(deps.db, {
          jobId: exec.jobId,
          type: "gpu_released",
          actor: deps.instance,
          data: { key: exec.key, at: release.at.toISOString(), pids: release.pids },
        }),
      );
      if (status !== undefined) {
        deps.feed.publish({
          type: "execution",
          jobId: exec.jobId,
          executionId: exec.id,
          key: exec.key,
          status,
        });
      }
      return;
    }
    await durable(() =>
      appendEvent(deps.db, {
        jobId: exec.jobId,
        type: "gpu_not_released",
        actor: deps.instance,
        data: {
          key: exec.key,
          held: release.held.map((h) => ({ pid: h.pid, mib: h.usedMib })),
          error: release.error,
          pids: release.pids,
        },
      }),
    );
  }

  return {
    record(exec: ExecutionRow, release: GpuRelease & { pids: number[] }): void {
      const log = deps.logger.child({ job_id: exec.jobId, execution_id: exec.id, key: exec.key });
      if (release.released) log.info({ pids: release.pids }, "GPU released");
      else {
        deps.metrics.gpuNotReleased.inc({ provider: exec.provider });
        log.warn(
          {
            held: release.held.map((h) => ({ pid: h.pid, mib: h.usedMib })),
            error: release.error,
          },
          "gpu_not_released: GPU memory still held after the process group was gone",
        );
      }
      writes.add(write(exec, release), (err) =>
        log.error({ err }, "recording the GPU release failed"),
      );
    },
    /** Resolves once every record in flight has been written (or has failed). */
    settled: writes.settled,
  };
}

export type GpuReleases = ReturnType<typeof createGpuReleases>;
