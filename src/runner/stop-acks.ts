/** A runner's report that a cancelled job has stopped: every execution settled. */
export interface StopAck {
  stoppedAt: Date | null;
  /** A live job context was aborted by the cancel (false if the job had already finished its work). */
  contextAborted: boolean;
}

export interface StopWaiter {
  /** The ack, or null if none came within `ms`. */
  wait(ms: number): Promise<StopAck | null>;
  dispose(): void;
}

/**
 * Where cancel requests wait for the stop acknowledgement of their job. A
 * waiter is registered before the cancel is issued, so an ack that comes
 * back at once is not missed; disposed waiters leave nothing behind.
 */
export interface StopAcks {
  waiter(jobId: string): StopWaiter;
  resolve(jobId: string, ack: StopAck): void;
  /** Waiters registered now (a leak shows here). */
  size(): number;
}

export function createStopAcks(): StopAcks {
  const waiting = new Map<string, Set<(ack: StopAck) => void>>();
  let size = 0;
  return {
    waiter(jobId) {
      let received: StopAck | undefined;
      let notify: ((ack: StopAck) => void) | undefined;
      const listener = (ack: StopAck) => {
        received = ack;
        notify?.(ack);
      };
      let set = waiting.get(jobId);
      if (set === undefined) {
        set = new Set();
        waiting.set(jobId, set);
      }
      set.add(listener);
      size++;
      const dispose = () => {
        const s = waiting.get(jobId);
        if (s?.delete(listener)) size--;
        if (s?.size === 0) waiting.delete(jobId);
      };
      return {
        wait(ms) {
          if (received !== undefined) return Promise.resolve(received);
          return new Promise((resolve) => {
            const timer = setTimeout(() => resolve(null), ms);
            notify = (ack) => {
              clearTimeout(timer);
              resolve(ack);
            };
          });
        },
        dispose,
      };
    },
    resolve(jobId, ack) {
      for (const listener of waiting.get(jobId) ?? []) listener(ack);
    },
    size: () => size,
  };
}
