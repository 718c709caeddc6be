/**
 * Group commit for writes that many jobs make at about the same time. Items
 * added while a batch is being written wait for the next one, so a batch
 * adds no delay when the database is idle (it goes at the end of the
 * current I/O phase, `setImmediate`) and grows with the load when it is
 * not: one statement for every job that finished meanwhile, instead of one
 * each. At most `maxInFlight` batches run at once, each of at most
 * `maxItems`.
 *
 * Contract: `run` answers one output per item, in order; if it throws,
 * every item of that batch rejects with the error (each caller then
 * retries, or not, as it would a write of its own). Callers must only
 * batch writes whose guards make each row's outcome independent of the
 * others': the batch is one statement, not a transaction of separate ones.
 */
export interface Batcher<I, O> {
  add(item: I): Promise<O>;
  /** Items waiting or being written. */
  pending(): number;
}

export function createBatcher<I, O>(options: {
  run: (items: I[]) => Promise<O[]>;
  maxItems: number;
  maxInFlight?: number;
}): Batcher<I, O> {
  const maxInFlight = options.maxInFlight ?? 1;
  const queue: { item: I; resolve: (o: O) => void; reject: (err: unknown) => void }[] = [];
  let inFlight = 0;
  let writing = 0;
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.splice(0, options.maxItems);
      inFlight++;
      writing += batch.length;
      options
        .run(batch.map((b) => b.item))
        .then((outputs) => {
          if (outputs.length !== batch.length) {
            throw new Error(`a batch of ${batch.length} answered ${outputs.length} outputs`);
          }
          for (const [i, b] of batch.entries()) b.resolve(outputs[i] as O);
        })
        .catch((err: unknown) => {
          for (const b of batch) b.reject(err);
        })
        .finally(() => {
          inFlight--;
          writing -= batch.length;
          schedule();
        });
    }
  };
  const schedule = () => {
    if (scheduled || queue.length === 0 || inFlight >= maxInFlight) return;
    scheduled = true;
    setImmediate(flush);
  };

  return {
    add(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
    pending: () => queue.length + writing,
  };
}
