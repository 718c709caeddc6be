/** A wake-up that is never lost: a notify before the wait makes the next wait return at once. */
export function createWakeup() {
  let pending = false;
  let wake: (() => void) | undefined;
  return {
    notify() {
      pending = true;
      wake?.();
    },
    wait(ms: number): Promise<void> {
      if (pending) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wake = undefined;
          pending = false;
          resolve();
        }
        wake = done;
      });
    },
  };
}
