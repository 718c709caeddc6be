import type { Metrics } from "../metrics.js";
import type { JobFeed } from "./job-feed.js";
import type { StopAck, StopAcks } from "./stop-acks.js";

/**
 * What an instance tells itself after one of the transitions of
 * src/db/job-endings.ts committed: the only way metrics, the live feed, the
 * stop acknowledgements and the webhook loop learn that a job ended. A new
 * reaction to a job's end is one more listener, never one more call site.
 */
export type JobEnd =
  /** The job reached a terminal status (a running job's `cancelled` is followed by its `stopped`). */
  | {
      kind: "ended";
      jobId: string;
      status: "completed" | "partial" | "failed" | "cancelled" | "timed_out";
    }
  /**
   * A cancelled job's work has stopped. `stop` is null when this instance
   * saw the stop but another one had recorded it. `by` says who found it:
   * its runner (an acknowledgement cancels may wait for), the cancel of a
   * queued job (nothing ran), or the reaper (the runner was lost).
   */
  | {
      kind: "stopped";
      jobId: string;
      stop: { stoppedAt: Date; cancelToStopMs: number } | null;
      by: "runner" | "queued" | "reaper";
      contextAborted: boolean;
    };

export type JobEndListener = (end: JobEnd) => void;

export interface JobEndings {
  /** Tells every listener, in order; one that throws never keeps the others from hearing. */
  ended(end: JobEnd): void;
  listen(listener: JobEndListener): () => void;
}

export function createJobEndings(onError: (err: unknown) => void = () => {}): JobEndings {
  const listeners = new Set<JobEndListener>();
  return {
    ended(end) {
      for (const listener of listeners) {
        try {
          listener(end);
        } catch (err) {
          onError(err);
        }
      }
    },
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/**
 * The instance's own reactions: counts, the `end` on the live feed, and for
 * a runner's stop the acknowledgement that cancels here and elsewhere wait for.
 */
export function listenForEndings(
  endings: JobEndings,
  deps: {
    metrics: Metrics;
    feed: JobFeed;
    acks: StopAcks;
    publishStopped: (jobId: string, ack: StopAck) => void;
  },
): () => void {
  return endings.listen((end) => {
    if (end.kind === "ended") {
      // A cancelled job is counted, and its stream ended, when its stop is known.
      if (end.status === "cancelled") {
        deps.feed.publish({ type: "job", jobId: end.jobId, status: "cancelled" });
        return;
      }
      deps.metrics.jobsFinished.inc({ status: end.status });
      deps.feed.publish({ type: "end", jobId: end.jobId, status: end.status });
      return;
    }
    if (end.stop !== null) {
      deps.metrics.jobsFinished.inc({ status: "cancelled" });
      // Only a runner's report measures the stop; the reaper's is an upper bound.
      if (end.by === "runner") deps.metrics.cancelToStop.observe(end.stop.cancelToStopMs / 1000);
    }
    deps.feed.publish({ type: "end", jobId: end.jobId, status: "cancelled" });
    if (end.by === "runner") {
      const ack = { stoppedAt: end.stop?.stoppedAt ?? null, contextAborted: end.contextAborted };
      deps.acks.resolve(end.jobId, ack);
      // The cancel may have been taken by another instance: tell it too.
      deps.publishStopped(end.jobId, ack);
    }
  });
}
