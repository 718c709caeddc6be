/**
 * A FIFO counting semaphore (a provider's max_concurrency). A waiter whose
 * signal aborts leaves the queue at once and rejects with the signal's reason.
 */
export interface Semaphore {
  acquire(signal: AbortSignal): Promise<() => void>;
  readonly active: number;
  readonly waiting: number;
}

export function createSemaphore(limit: number): Semaphore {
  let active = 0;
  const queue = new Set<{ grant: () => void }>();

  const release = () => {
    const next = queue.values().next();
    if (next.done) {
      active--;
      return;
    }
    queue.delete(next.value);
    next.value.grant();
  };
  const releaser = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };

  return {
    get active() {
      return active;
    },
    get waiting() {
      return queue.size;
    },
    acquire(signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      if (active < limit) {
        active++;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          queue.delete(waiter);
          reject(signal.reason);
        };
        const waiter = {
          grant: () => {
            signal.removeEventListener("abort", onAbort);
            resolve(releaser());
          },
        };
        queue.add(waiter);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    },
  };
}
