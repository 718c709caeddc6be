import { appendEvent } from "../db/events.js";
import { setRemoteStop } from "../db/executions.js";
import type { ExecutionRow, RemoteStopRecord, UsageRecord } from "../db/schema.js";
import { retryWhileUnavailable } from "../db/unavailable.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { RemoteStop } from "../providers/types.js";
import { createBackgroundWrites, RECORD_RETRY_MS } from "./background-writes.js";
import type { JobFeed } from "./job-feed.js";

/**
 * Where a remote-queue execution's stop is recorded once the provider has
 * answered (SPEC.md section 3, `remote_stop`): the execution's
 * `remote_stop`, a `remote_stop` audit event, an `execution` event on the
 * live feed, and the metrics. It runs after the job's own stop was reported:
 * nothing here delays a cancel. `settled()` waits for the records in flight
 * (shutdown, tests).
 */
export function createRemoteStops(deps: {
  db: Parameters<typeof setRemoteStop>[0];
  instance: string;
  feed: JobFeed;
  metrics: Metrics;
  logger: Logger;
}) {
  const writes = createBackgroundWrites();

  async function write(exec: ExecutionRow, stop: RemoteStop, usage?: UsageRecord): Promise<void> {
    const record: RemoteStopRecord = {
      requested_at: stop.requestedAt.toISOString(),
      confirmed_at: stop.confirmedAt?.toISOString() ?? null,
      outcome: stop.outcome,
    };
    const status = await retryWhileUnavailable(
      () => setRemoteStop(deps.db, exec.id, record, usage),
      RECORD_RETRY_MS,
    );
    await retryWhileUnavailable(
      () =>
        appendEvent(deps.db, {
          jobId: exec.jobId,
          type: "remote_stop",
          actor: deps.instance,
          data: { key: exec.key, provider: exec.provider, why: stop.why, ...record },
        }),
      RECORD_RETRY_MS,
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
  }

  return {
    /** Records `stop`, and the GPU time it ends (`usage`), on the execution. */
    record(exec: ExecutionRow, stop: RemoteStop, usage?: UsageRecord): void {
      const log = deps.logger.child({ job_id: exec.jobId, execution_id: exec.id, key: exec.key });
      deps.metrics.remoteStops.inc({ provider: exec.provider, outcome: stop.outcome });
      if (stop.confirmedAt !== null && stop.outcome === "confirmed") {
        deps.metrics.remoteStopSeconds.observe(
          { provider: exec.provider },
          (stop.confirmedAt.getTime() - stop.requestedAt.getTime()) / 1000,
        );
      }
      if (stop.outcome === "failed") {
        log.warn(
          { provider: exec.provider, why: stop.why },
          "remote cancel failed: the GPU may still be running",
        );
      } else {
        log.info({ provider: exec.provider, outcome: stop.outcome }, "remote stop");
      }
      writes.add(write(exec, stop, usage), (err) =>
        log.error({ err }, "recording the remote stop failed"),
      );
    },
    /** Resolves once every record in flight has been written (or has failed). */
    settled: writes.settled,
  };
}

export type RemoteStops = ReturnType<typeof createRemoteStops>;
