import type { Context } from "../context/context.js";
import type { ProviderConfig } from "./config.js";
import type { GpuRelease } from "./nvidia-smi.js";

/** What one attempt of one execution gets from the runner. */
export interface ExecutionCall {
  /** Aborted on cancel, timeout, stall or shutdown: every request, read, sleep and process takes `ctx.signal`. */
  ctx: Context;
  executionId: string;
  model: string;
  input: unknown;
  /** Output received so far (kept as the partial output if the execution is stopped). */
  progress(partial: unknown): void;
  /** Bytes arrived: resets the stall watchdog. */
  activity(): void;
  /** The provider's own id for the work (an async queue's job id). */
  remoteId(id: string): void;
  /** Something worth an audit event (a remote cancel was sent, say). */
  note(type: string, data: Record<string, unknown>): void;
  /**
   * A remote-queue kind's stop, reported after the attempt settled (the
   * provider's cancel call and its confirmation run on after our side has
   * stopped): called once when the stop is known to have ended one way or
   * another. Optional: without it the stop is only noted.
   */
  remoteStop?(stop: RemoteStop): void;
  /** The GPU time the provider says it billed for this work (ms), when it reports one. */
  billed?(ms: number): void;
  /** A structured progress report (`process`: a stdout line `{"progress": …}`): its value. */
  report?(progress: unknown): void;
  /**
   * `gpu_check`: whether the GPU memory of the work's processes was freed,
   * reported after the attempt settled (the job's stop does not wait for it).
   */
  gpuRelease?(release: GpuRelease & { pids: number[] }): void;
}

/** How the provider's own stop of the remote work went (SPEC.md section 3, `remote_stop`). */
export interface RemoteStop {
  requestedAt: Date;
  /** When the provider's status showed the work ended; null unless `confirmed` or `already_finished`. */
  confirmedAt: Date | null;
  outcome: "confirmed" | "requested" | "already_finished" | "failed";
  /** Why the cancel was sent: the abort's cause code, or `gave_up`. */
  why: string;
  /** The GPU time the provider billed, if its final status says (ms). */
  billedMs?: number;
}

/**
 * One configured provider. `attempt` makes one try and resolves with the
 * execution's output; it must not settle before every socket it opened is
 * closed or returned to the pool and every process it started is gone,
 * whether it succeeds, fails or is aborted.
 */
export interface Provider {
  readonly name: string;
  readonly config: ProviderConfig;
  attempt(call: ExecutionCall): Promise<unknown>;
}
