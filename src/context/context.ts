/**
 * Go's `context` package, rebuilt on AbortController.
 *
 * A Context carries a cancellation signal, a cause and an optional deadline
 * across API boundaries. Cancelling a context cancels every context derived
 * from it. Pass `ctx.signal` to everything that does I/O for the work the
 * context scopes (fetch/undici requests, streams, timers, child processes).
 *
 * Contracts (as in Go):
 * - A cancel function does not wait for the work to stop; it only signals.
 * - Cancel is idempotent. The first cancel's cause wins; later calls do nothing.
 * - Calling a cancel function releases the context: it is unlinked from its
 *   parent, and its deadline timer is cleared. Always call it (in a `finally`)
 *   once the work is done, or the parent keeps a reference until it is cancelled.
 * - A child's deadline is never later than its parent's.
 * - `signal.reason` is the cause (`cause(ctx)`); `err` is `Canceled` or
 *   `DeadlineExceeded`.
 *
 * Design (see DESIGN.md): a child holds one link in its parent's child set,
 * removed when the child is cancelled or released. There is no
 * `AbortSignal.any` per child (it keeps dependents alive for as long as the
 * parent lives), and the AbortController behind `signal` is created lazily,
 * on first read, like Go's lazily made `Done()` channel.
 */

/** A stable code on each context error, in the style of undici's `UND_ERR_*`. */
export class ContextError extends Error {
  readonly code: "CONTEXT_CANCELED" | "CONTEXT_DEADLINE_EXCEEDED";
  constructor(code: ContextError["code"], message: string) {
    super(message);
    this.name = "ContextError";
    this.code = code;
  }
}

/** The `err` of a context cancelled by a cancel function (Go's `context.Canceled`). */
export const Canceled: ContextError = new ContextError("CONTEXT_CANCELED", "context canceled");

/** The `err` of a context whose deadline passed (Go's `context.DeadlineExceeded`). */
export const DeadlineExceeded: ContextError = new ContextError(
  "CONTEXT_DEADLINE_EXCEEDED",
  "context deadline exceeded",
);

export interface Context {
  /** Aborted when the context is done; `signal.reason` is the cause. */
  readonly signal: AbortSignal;
  /** Resolves (never rejects) when the context is done. */
  readonly done: Promise<void>;
  /** `undefined` while live; then `Canceled` or `DeadlineExceeded`. */
  readonly err: ContextError | undefined;
  /** When the context will be cancelled by its deadline, if it has one. */
  readonly deadline: Date | undefined;
}

export type CancelFunc = () => void;
export type CancelCauseFunc = (cause?: unknown) => void;

/** Node clamps longer delays to 1 ms; deadlines further out are reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A context that is never cancelled and has no deadline; Background, and WithoutCancel's result. */
class EmptyCtx implements Context {
  #signal: AbortSignal | undefined;
  get signal(): AbortSignal {
    this.#signal ??= new AbortController().signal;
    return this.#signal;
  }
  get done(): Promise<void> {
    return NEVER;
  }
  get err(): undefined {
    return undefined;
  }
  get deadline(): undefined {
    return undefined;
  }
}

const NEVER: Promise<void> = new Promise<void>(() => {});
const BACKGROUND = new EmptyCtx();

/**
 * A cancelable context. Its parent link is one of:
 * - another CancelCtx: the child sits in the parent's `children` set;
 * - a foreign Context (not made here): one 'abort' listener on its signal;
 * - nothing (the parent can never be cancelled).
 */
class CancelCtx implements Context {
  #parent: CancelCtx | undefined;
  #foreign: { signal: AbortSignal; onAbort: () => void } | undefined;
  #children: Set<CancelCtx> | undefined;
  #afterFuncs: Set<AfterFunc> | undefined;
  #controller: AbortController | undefined;
  #done: Promise<void> | undefined;
  #resolveDone: (() => void) | undefined;
  #err: ContextError | undefined;
  #cause: unknown;
  #deadline: Date | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(parent: Context, deadline: Date | undefined) {
    this.#deadline = deadline;
    if (parent instanceof CancelCtx) {
      if (parent.#err !== undefined) {
        this.cancel(false, parent.#err, parent.#cause);
        return;
      }
      this.#parent = parent;
      parent.#children ??= new Set();
      parent.#children.add(this);
    } else if (!(parent instanceof EmptyCtx)) {
      const signal = parent.signal;
      if (signal.aborted) {
        this.cancel(false, parent.err ?? Canceled, signal.reason);
        return;
      }
      const onAbort = () => this.cancel(false, parent.err ?? Canceled, signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#foreign = { signal, onAbort };
    }
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#err !== undefined) this.#controller.abort(this.#cause);
    }
    return this.#controller.signal;
  }

  get done(): Promise<void> {
    if (this.#done === undefined) {
      if (this.#err !== undefined) {
        this.#done = Promise.resolve();
      } else {
        this.#done = new Promise<void>((resolve) => {
          this.#resolveDone = resolve;
        });
      }
    }
    return this.#done;
  }

  get err(): ContextError | undefined {
    return this.#err;
  }

  get deadline(): Date | undefined {
    return this.#deadline;
  }

  get cause(): unknown {
    return this.#cause;
  }

  get childCount(): number {
    return this.#children?.size ?? 0;
  }

  armDeadline(at: Date): void {
    if (this.#err !== undefined) return;
    const remaining = at.getTime() - Date.now();
    if (remaining <= 0) {
      this.cancel(true, DeadlineExceeded, DeadlineExceeded);
      return;
    }
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        if (remaining > MAX_TIMER_MS) this.armDeadline(at);
        else this.cancel(true, DeadlineExceeded, DeadlineExceeded);
      },
      Math.min(remaining, MAX_TIMER_MS),
    );
  }

  addAfterFunc(af: AfterFunc): void {
    this.#afterFuncs ??= new Set();
    this.#afterFuncs.add(af);
  }

  removeAfterFunc(af: AfterFunc): void {
    this.#afterFuncs?.delete(af);
  }

  /**
   * Cancels this context and every descendant with the same err and cause.
   * `detach` unlinks it from its parent; a parent cancelling its children
   * passes false because it drops its whole child set at once.
   */
  cancel(detach: boolean, err: ContextError, cause: unknown): void {
    if (this.#err !== undefined) return;
    this.#err = err;
    this.#cause = cause === undefined ? err : cause;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#controller?.abort(this.#cause);
    this.#resolveDone?.();
    this.#resolveDone = undefined;
    const children = this.#children;
    this.#children = undefined;
    if (children !== undefined) {
      for (const child of children) child.cancel(false, err, this.#cause);
    }
    const afterFuncs = this.#afterFuncs;
    this.#afterFuncs = undefined;
    if (afterFuncs !== undefined) {
      for (const af of afterFuncs) af.start();
    }
    if (detach && this.#parent !== undefined) this.#parent.#children?.delete(this);
    this.#parent = undefined;
    if (this.#foreign !== undefined) {
      this.#foreign.signal.removeEventListener("abort", this.#foreign.onAbort);
      this.#foreign = undefined;
    }
  }
}

/** One registration of `afterFunc`: runs at most once, or is stopped. */
class AfterFunc {
  #state: "waiting" | "started" | "stopped" = "waiting";
  constructor(private readonly fn: () => void) {}

  start(): void {
    if (this.#state !== "waiting") return;
    this.#state = "started";
    queueMicrotask(this.fn);
  }

  stop(): boolean {
    if (this.#state !== "waiting") return false;
    this.#state = "stopped";
    return true;
  }
}

/** The root of every context tree: never cancelled, no deadline. */
export function background(): Context {
  return BACKGROUND;
}

/** A child of `parent` that is cancelled when `cancel()` is called or when the parent is. */
export function withCancel(parent: Context): [Context, CancelFunc] {
  const ctx = new CancelCtx(parent, parent.deadline);
  return [ctx, () => ctx.cancel(true, Canceled, Canceled)];
}

/**
 * Like `withCancel`, but `cancel(cause)` records why. `cause(ctx)` and
 * `ctx.signal.reason` report it; `cancel()` without a cause records `Canceled`.
 */
export function withCancelCause(parent: Context): [Context, CancelCauseFunc] {
  const ctx = new CancelCtx(parent, parent.deadline);
  return [ctx, (cause?: unknown) => ctx.cancel(true, Canceled, cause)];
}

/**
 * A child of `parent` that is also cancelled with `DeadlineExceeded` at `deadline`.
 * If the parent's deadline is earlier, the child keeps the parent's (and sets
 * no timer of its own: the parent's expiry reaches it). Calling `cancel`
 * clears the timer.
 */
export function withDeadline(parent: Context, deadline: Date): [Context, CancelFunc] {
  if (!(deadline instanceof Date) || Number.isNaN(deadline.getTime())) {
    throw new TypeError(`withDeadline: deadline must be a valid Date, got ${String(deadline)}`);
  }
  const parentDeadline = parent.deadline;
  if (parentDeadline !== undefined && parentDeadline.getTime() <= deadline.getTime()) {
    return withCancel(parent);
  }
  const ctx = new CancelCtx(parent, new Date(deadline.getTime()));
  ctx.armDeadline(deadline);
  return [ctx, () => ctx.cancel(true, Canceled, Canceled)];
}

/** `withDeadline(parent, now + ms)`; `ms` must be a finite number (≤ 0 is already expired). */
export function withTimeout(parent: Context, ms: number): [Context, CancelFunc] {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new TypeError(`withTimeout: ms must be a finite number, got ${String(ms)}`);
  }
  return withDeadline(parent, new Date(Date.now() + ms));
}

/**
 * A context that is never cancelled, even when `parent` is: for cleanup that
 * must outlive a cancel (a provider's remote cancel call, an audit write).
 * Give such work its own `withTimeout` so it cannot hang.
 */
export function withoutCancel(_parent: Context): Context {
  return new EmptyCtx();
}

/**
 * Arranges for `fn` to run once, in its own microtask, after `ctx` is done
 * (at once if it already is). `stop()` returns true if it prevented `fn` from
 * running, false if `fn` was already started or stopped. `fn` must not throw:
 * like a panic in a Go goroutine, a throw is an uncaught exception.
 */
export function afterFunc(ctx: Context, fn: () => void): () => boolean {
  const af = new AfterFunc(fn);
  if (ctx instanceof CancelCtx) {
    if (ctx.err !== undefined) af.start();
    else ctx.addAfterFunc(af);
    return () => {
      const stopped = af.stop();
      if (stopped) ctx.removeAfterFunc(af);
      return stopped;
    };
  }
  if (ctx instanceof EmptyCtx) return () => af.stop();
  const signal = ctx.signal;
  if (signal.aborted) {
    af.start();
    return () => af.stop();
  }
  const onAbort = () => af.start();
  signal.addEventListener("abort", onAbort, { once: true });
  return () => {
    const stopped = af.stop();
    if (stopped) signal.removeEventListener("abort", onAbort);
    return stopped;
  };
}

/**
 * Why `ctx` was cancelled: the first cause given to a cancel function, else
 * its `err`; `undefined` while it is live.
 */
export function cause(ctx: Context): unknown {
  if (ctx instanceof CancelCtx) return ctx.cause;
  if (ctx.err === undefined) return undefined;
  return ctx.signal.reason ?? ctx.err;
}

/**
 * How many live children are linked to `ctx`. For tests and diagnostics:
 * it returns to 0 once every child has been cancelled or released.
 */
export function childCount(ctx: Context): number {
  return ctx instanceof CancelCtx ? ctx.childCount : 0;
}
