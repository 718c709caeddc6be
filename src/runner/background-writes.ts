/** How long a record written after a job's stop retries through a database outage. */
export const RECORD_RETRY_MS = 30_000;

/**
 * Writes that run after a job's own stop was reported (a remote stop's
 * record, a GPU release's): nothing waits for them on a cancel's path, but
 * `settled()` lets shutdown and tests wait for those in flight. A write that
 * fails goes to `onError`, never to an unhandled rejection.
 */
export function createBackgroundWrites() {
  const pending = new Set<Promise<void>>();
  return {
    add(write: Promise<void>, onError: (err: unknown) => void): void {
      const tracked: Promise<void> = write.catch(onError).finally(() => pending.delete(tracked));
      pending.add(tracked);
    },
    /** Resolves once every write in flight has been written (or has failed). */
    async settled(): Promise<void> {
      await Promise.allSettled([...pending]);
    },
  };
}
