/**
 * Live updates of jobs on this instance, for whoever watches them (the SSE
 * stream). In memory and best effort: the database is the record. A
 * listener that throws is dropped, never the publisher.
 */
export type FeedEvent =
  | { type: "job"; jobId: string; status: string }
  | { type: "execution"; jobId: string; executionId: string; key: string; status: string }
  | {
      type: "progress";
      jobId: string;
      executionId: string;
      key: string;
      output: unknown;
      /** A structured progress report (`process`), when this event is one. */
      progress?: unknown;
    }
  | { type: "end"; jobId: string; status: string };

export type FeedListener = (event: FeedEvent) => void;

export interface JobFeed {
  publish(event: FeedEvent): void;
  /** Returns the unsubscribe function; calling it twice is harmless. */
  subscribe(jobId: string, listener: FeedListener): () => void;
  /** Whether anyone watches the job (skip building events nobody reads). */
  watched(jobId: string): boolean;
  /** Listeners across all jobs (a leak shows here). */
  size(): number;
}

export function createJobFeed(): JobFeed {
  const listeners = new Map<string, Set<FeedListener>>();
  let size = 0;
  const unsubscribe = (jobId: string, listener: FeedListener) => {
    const set = listeners.get(jobId);
    if (set?.delete(listener)) size--;
    if (set?.size === 0) listeners.delete(jobId);
  };
  return {
    publish(event) {
      const set = listeners.get(event.jobId);
      if (set === undefined) return;
      for (const listener of [...set]) {
        try {
          listener(event);
        } catch {
          unsubscribe(event.jobId, listener);
        }
      }
    },
    subscribe(jobId, listener) {
      let set = listeners.get(jobId);
      if (set === undefined) {
        set = new Set();
        listeners.set(jobId, set);
      }
      if (!set.has(listener)) size++;
      set.add(listener);
      return () => unsubscribe(jobId, listener);
    },
    watched: (jobId) => listeners.has(jobId),
    size: () => size,
  };
}
