import { setTimeout as sleep } from "node:timers/promises";
import { type Context, DeadlineExceeded, withoutCancel, withTimeout } from "../context/context.js";
import { isCause } from "./causes.js";
import type { ProviderConfigOf } from "./config.js";
import { networkError, ProviderError } from "./errors.js";
import type { ExecutionCall, Provider, RemoteStop } from "./types.js";

/** What a remote queue's status says of the work, in the words every kind shares. */
export interface RemoteState {
  /** The provider's own status word, for messages. */
  status: string;
  /** The work ended: it will use no more GPU time. */
  ended: boolean;
  /** It ended with a result. */
  succeeded: boolean;
  output?: unknown;
  error?: string;
  /** The GPU time the provider billed so far (ms), where its status reports one. */
  billedMs?: number;
}

/** What the provider said to the cancel call. */
export type CancelAnswer = "requested" | "already_finished";

/**
 * The calls one remote-queue kind makes; each kind's file implements only
 * these, from its provider's documented API. `H` is the kind's handle on
 * submitted work (its id, and the URLs the provider gave for it).
 */
export interface RemoteQueueApi<H> {
  /** Creates the work; `signal` (not the execution's: see `attempt`) is the create call's to obey. */
  submit(
    exec: ExecutionCall,
    signal: AbortSignal,
  ): Promise<{ id: string; handle: H; state: RemoteState }>;
  status(handle: H, signal: AbortSignal, activity: () => void): Promise<RemoteState>;
  /**
   * Follows the work as it streams (Replicate's `urls.stream`), reporting
   * output as progress; resolves when the stream ends, with the state if it
   * knows it. Polling takes over after it, so a stream that breaks loses nothing.
   */
  follow?(handle: H, exec: ExecutionCall): Promise<RemoteState | undefined>;
  /** Output of work that succeeded, when it is not in the status itself (fal's response URL). */
  result?(handle: H, state: RemoteState, exec: ExecutionCall): Promise<unknown>;
  cancel(handle: H, signal: AbortSignal): Promise<CancelAnswer>;
  /**
   * Whether an end seen after a cancel was requested is the cancel's doing
   * (`confirmed`) or the work's own (`already_finished`). Default: a success
   * means it finished first. fal shows a cancelled request as COMPLETED too.
   */
  endAfterCancel?(state: RemoteState): "confirmed" | "already_finished";
}

type RemoteQueueConfig = ProviderConfigOf<"runpod" | "replicate" | "fal">;

/** Consecutive failed status polls tolerated before giving up on the remote work. */
const MAX_POLL_FAILURES = 5;

/**
 * How long a create call may take once sent, whatever happens to the
 * execution meanwhile (see `attempt`). A cancel waits for it: the create
 * call is normally quick, and its answer is the only way to stop the work.
 */
const SUBMIT_WAIT_MS = 30_000;

/**
 * The remote-queue skeleton (DESIGN.md: "Remote-queue providers share one
 * skeleton"): submit, then poll the status with an abortable sleep. Closing
 * our connection stops nothing on such a provider, so whenever the attempt
 * ends after submitting without the work having ended (a cancel, deadline,
 * stall, shutdown, or polls that kept failing), the provider's cancel call
 * is sent outside the cancelled context (`withoutCancel`) with its own
 * `cancel_timeout_ms`, then its status is polled for up to
 * `confirm_timeout_ms` until it shows the work ended: that is the
 * execution's remote stop, reported through `exec.remoteStop`.
 *
 * Contract: the attempt settles as soon as our side has stopped; the cancel
 * call and its confirmation run on in the background, so neither the
 * cancel's answer nor the job's `stopped_at` waits for the provider.
 * Failures after the submit are never retried: a retry would run the work
 * twice.
 */
export function remoteQueueProvider<H>(
  name: string,
  config: RemoteQueueConfig,
  api: RemoteQueueApi<H>,
): Provider {
  async function stopRemote(exec: ExecutionCall, handle: H, id: string, why: string) {
    const requestedAt = new Date();
    const report = (outcome: RemoteStop["outcome"], confirmedAt: Date | null, billedMs?: number) =>
      exec.remoteStop?.({
        requestedAt,
        confirmedAt,
        outcome,
        why,
        ...(billedMs === undefined ? {} : { billedMs }),
      });
    const answer = await within(exec.ctx, config.cancel_timeout_ms, (signal) =>
      api.cancel(handle, signal),
    ).catch((err: unknown) => err as Error);
    if (answer instanceof Error) {
      const timedOut = Date.now() - requestedAt.getTime() >= config.cancel_timeout_ms;
      exec.note("remote_cancel_sent", {
        provider: name,
        remote_id: id,
        why,
        ok: false,
        error: timedOut
          ? `no answer within ${config.cancel_timeout_ms} ms`
          : answer.message.slice(0, 300),
      });
      return report("failed", null);
    }
    exec.note("remote_cancel_sent", {
      provider: name,
      remote_id: id,
      why,
      ok: true,
      answer,
      ms: Date.now() - requestedAt.getTime(),
    });
    if (answer === "already_finished") return report("already_finished", new Date());
    const ended = await within(exec.ctx, config.confirm_timeout_ms, async (signal) => {
      for (;;) {
        const state = await api.status(handle, signal, () => {}).catch(() => undefined);
        if (state?.ended) return state;
        await sleep(config.poll_ms, undefined, { signal });
      }
    }).catch(() => undefined);
    if (ended === undefined) return report("requested", null);
    const outcome =
      api.endAfterCancel?.(ended) ?? (ended.succeeded ? "already_finished" : "confirmed");
    return report(outcome, new Date(), ended.billedMs);
  }

  return {
    name,
    config,
    async attempt(exec) {
      const signal = exec.ctx.signal;
      if (signal.aborted) throw signal.reason;
      // Once sent, the create call is not aborted with the execution: a provider
      // that got it runs the work whether or not we hear back, and only its
      // answer (the work's id) lets us stop it. A cancel that arrives meanwhile
      // is seen right after, and the work is stopped as below.
      const {
        id,
        handle,
        state: submitted,
      } = await within(exec.ctx, SUBMIT_WAIT_MS, (created) => api.submit(exec, created));
      exec.remoteId(id);
      let state = submitted;
      let failures = 0;
      try {
        if (!state.ended && api.follow) state = (await api.follow(handle, exec)) ?? state;
        while (!state.ended) {
          await sleep(config.poll_ms, undefined, { signal });
          try {
            state = await api.status(handle, signal, exec.activity);
            failures = 0;
          } catch (err) {
            const polled = networkError(name, err);
            if (signal.aborted || !polled.retryable || ++failures >= MAX_POLL_FAILURES) throw err;
          }
        }
      } catch (err) {
        const reason: unknown = signal.reason;
        const why = !signal.aborted
          ? "gave_up"
          : isCause(reason)
            ? reason.code
            : reason === DeadlineExceeded
              ? "deadline"
              : "aborted";
        // Our side stops now; the provider's stop is confirmed in the background.
        // Never throws into the void: an unhandled rejection would end the process.
        stopRemote(exec, handle, id, why).catch(() => {
          try {
            exec.remoteStop?.({
              requestedAt: new Date(),
              confirmedAt: null,
              outcome: "failed",
              why,
            });
          } catch {
            // Nothing left to tell: the runner's recorder itself failed.
          }
        });
        if (signal.aborted) throw err;
        throw notRetryable(networkError(name, err));
      }
      if (state.billedMs !== undefined) exec.billed?.(state.billedMs);
      if (state.succeeded) {
        return api.result ? api.result(handle, state, exec) : (state.output ?? null);
      }
      throw new ProviderError(
        "remote_failed",
        `${name}: remote work ${id} ended ${state.status}${state.error ? `: ${state.error.slice(0, 300)}` : ""}`,
      );
    },
  };
}

/** Runs `work` on a context that ignores the execution's cancel but ends after `ms`. */
async function within<T>(
  parent: Context,
  ms: number,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const [ctx, release] = withTimeout(withoutCancel(parent), ms);
  try {
    return await work(ctx.signal);
  } finally {
    release();
  }
}

function notRetryable(err: ProviderError): ProviderError {
  return err.retryable
    ? new ProviderError(err.code, err.message, { status: err.status, cause: err })
    : err;
}

/** The job's time left, from the execution context's deadline, in ms (undefined without one). */
export function remainingMs(exec: ExecutionCall): number | undefined {
  const deadline = exec.ctx.deadline;
  return deadline === undefined ? undefined : Math.max(1, deadline.getTime() - Date.now());
}
