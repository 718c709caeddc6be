import type { StopAck } from "./stop-acks.js";

/**
 * How a cancel reaches a job held by another instance, and how its stop
 * acknowledgement comes back (src/cluster/pg-bus.ts: LISTEN/NOTIFY). A lost
 * message costs latency only: holders re-check their jobs every CANCEL_POLL_MS.
 */
export interface CancelBus {
  /** Asks whichever instance holds `jobId` to abort it (its cancel is already committed). */
  publishCancel(jobId: string, by?: { actor: string | null; reason: string | null }): Promise<void>;
  /** Tells whoever waits that `jobId` stopped. */
  publishStopped(jobId: string, ack: StopAck): Promise<void>;
}

export const localOnlyBus: CancelBus = {
  publishCancel: async () => {},
  publishStopped: async () => {},
};
