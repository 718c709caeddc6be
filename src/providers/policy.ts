import { setTimeout as sleep } from "node:timers/promises";
import {
  type Context,
  cause,
  DeadlineExceeded,
  withCancelCause,
  withTimeout,
} from "../context/context.js";
import { CancelCause, isCause } from "./causes.js";
import { networkError, ProviderError } from "./errors.js";
import type { Semaphore } from "./semaphore.js";
import type { ExecutionCall, Provider } from "./types.js";

/** Longest wait a Retry-After may impose; the execution's timeout still bounds it. */
const MAX_RETRY_AFTER_MS = 5 * 60_000;

export interface PolicyOptions {
  /** Retries after the first attempt (the execution's own, or the provider's default). */
  retries: number;
  /** The execution's timeout; the provider's `timeout_ms` caps it. */
  timeoutMs?: number | null;
  /** For tests: the jitter source. */
  random?: () => number;
}

/**
 * Runs one execution on `provider` under its policies: a slot of its
 * `max_concurrency` (a cancelled waiter leaves the queue), `timeout_ms`, the
 * `stall_ms` watchdog, and retries with exponential backoff and full jitter
 * on connection errors, 429 and 5xx (Retry-After honoured) — never on other
 * 4xx, never once output has streamed, never after a cancel: a cancel
 * interrupts a backoff sleep at once.
 *
 * Rejects with a ProviderError, or, when `call.ctx` itself was cancelled (the
 * job's cancel, deadline or shutdown), with that context's cause: the caller
 * tells them apart by looking at its own context.
 */
export async function runWithPolicies(
  provider: Provider,
  semaphore: Semaphore,
  call: ExecutionCall,
  options: PolicyOptions,
): Promise<unknown> {
  const parent = call.ctx;
  const config = provider.config;
  const timeoutMs = Math.min(options.timeoutMs ?? Number.POSITIVE_INFINITY, config.timeout_ms);
  const [ctx, releaseTimeout] = withTimeout(parent, timeoutMs);
  const random = options.random ?? Math.random;

  const classify = (err: unknown): unknown => {
    if (parent.err !== undefined) return cause(parent);
    if (ctx.err === DeadlineExceeded) {
      return new ProviderError("timeout", `${provider.name}: no result within ${timeoutMs} ms`);
    }
    if (isCause(err, "stalled")) {
      return new ProviderError("stalled", `${provider.name}: no bytes for ${config.stall_ms} ms`);
    }
    return networkError(provider.name, err);
  };

  try {
    const releaseSlot = await semaphore.acquire(ctx.signal);
    try {
      for (let attempt = 0; ; attempt++) {
        let progressed = false;
        try {
          return await attemptWithWatchdog(provider, {
            ...call,
            ctx,
            progress: (partial) => {
              progressed = true;
              call.progress(partial);
            },
          });
        } catch (err) {
          const failure = classify(err);
          if (!(failure instanceof ProviderError)) throw failure;
          if (!failure.retryable || progressed || attempt >= options.retries) throw failure;
          const backoff =
            random() * Math.min(config.retry_max_ms, config.retry_base_ms * 2 ** attempt);
          const delay =
            failure.retryAfterMs === undefined
              ? backoff
              : Math.min(failure.retryAfterMs, MAX_RETRY_AFTER_MS);
          call.note("retry_scheduled", {
            provider: provider.name,
            attempt: attempt + 1,
            delay_ms: Math.round(delay),
            error: failure.code,
            status: failure.status ?? null,
          });
          await sleep(delay, undefined, { signal: ctx.signal });
        }
      }
    } finally {
      releaseSlot();
    }
  } catch (err) {
    throw err instanceof ProviderError ? err : classify(err);
  } finally {
    releaseTimeout();
  }
}

/**
 * One attempt under the stall watchdog: a timer, refreshed by every byte,
 * that cancels the attempt with cause `stalled` after `stall_ms` of silence.
 */
async function attemptWithWatchdog(provider: Provider, call: ExecutionCall & { ctx: Context }) {
  const [ctx, cancel] = withCancelCause(call.ctx);
  const stallMs = provider.config.stall_ms;
  const watchdog = setTimeout(
    () => cancel(new CancelCause("stalled", `no bytes from ${provider.name} for ${stallMs} ms`)),
    stallMs,
  );
  try {
    return await provider.attempt({
      ...call,
      ctx,
      activity: () => {
        watchdog.refresh();
        call.activity();
      },
      progress: (partial) => {
        watchdog.refresh();
        call.progress(partial);
      },
    });
  } catch (err) {
    // The attempt's own context says why it stopped better than what the I/O threw.
    throw ctx.err !== undefined && call.ctx.err === undefined ? cause(ctx) : err;
  } finally {
    clearTimeout(watchdog);
    cancel();
  }
}
