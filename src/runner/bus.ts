/**
 * How a cancel reaches a job held by another instance. The cluster issue
 * implements it with LISTEN/NOTIFY; on one instance nothing else holds jobs,
 * and the lease renewal still notices a cancel of a job held here that was
 * written to the database by someone else.
 */
export interface CancelBus {
  /** Asks whichever instance holds `jobId` to abort it. */
  publishCancel(jobId: string): Promise<void>;
}

export const localOnlyBus: CancelBus = {
  publishCancel: async () => {},
};
