import { describe, expect, it, vi } from "vitest";
import {
  afterFunc,
  background,
  Canceled,
  type Context,
  cause,
  childCount,
  DeadlineExceeded,
  withCancel,
  withCancelCause,
  withDeadline,
  withoutCancel,
  withTimeout,
} from "../../src/context/context.js";

/** Resolves when `ctx` is done, or fails the test after `ms`. */
function doneWithin(ctx: Context, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`context not done within ${ms} ms`)), ms);
    ctx.done.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe("withCancel and withCancelCause", () => {
  it("cancelling a parent cancels all descendants with the parent's cause", () => {
    const [root, cancelRoot] = withCancelCause(background());
    const [a] = withCancel(root);
    const [b] = withCancelCause(a);
    const [c] = withTimeout(b, 60_000);
    const seen: unknown[] = [];
    c.signal.addEventListener("abort", () => seen.push(c.signal.reason));

    const why = new Error("user pressed cancel");
    cancelRoot(why);

    for (const ctx of [root, a, b, c]) {
      expect(ctx.err).toBe(Canceled);
      expect(cause(ctx)).toBe(why);
      expect(ctx.signal.aborted).toBe(true);
      expect(ctx.signal.reason).toBe(why);
    }
    expect(seen).toEqual([why]);
    expect(childCount(root)).toBe(0);
  });

  it("a second cancel changes nothing: the first cause wins", () => {
    const [ctx, cancel] = withCancelCause(background());
    const listener = vi.fn();
    ctx.signal.addEventListener("abort", listener);
    cancel("user");
    cancel("shutdown");
    expect(cause(ctx)).toBe("user");
    expect(ctx.signal.reason).toBe("user");
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it("a child cancelled first keeps its own cause when the parent is cancelled later", () => {
    const [parent, cancelParent] = withCancelCause(background());
    const [child, cancelChild] = withCancelCause(parent);
    cancelChild("child reason");
    expect(childCount(parent)).toBe(0);
    cancelParent("parent reason");
    expect(cause(child)).toBe("child reason");
  });

  it("cancelling a child leaves its parent and siblings live", () => {
    const [parent] = withCancel(background());
    const [a, cancelA] = withCancel(parent);
    const [b] = withCancel(parent);
    cancelA();
    expect(a.err).toBe(Canceled);
    expect(parent.err).toBeUndefined();
    expect(b.err).toBeUndefined();
    expect(childCount(parent)).toBe(1);
  });

  it("cancel without a cause records Canceled as the cause", () => {
    const [ctx, cancel] = withCancelCause(background());
    cancel();
    expect(cause(ctx)).toBe(Canceled);
    expect(ctx.signal.reason).toBe(Canceled);
  });

  it("a context derived from a cancelled parent is born cancelled", async () => {
    const [parent, cancel] = withCancelCause(background());
    cancel("gone");
    const [child] = withCancel(parent);
    expect(child.err).toBe(Canceled);
    expect(cause(child)).toBe("gone");
    expect(child.signal.aborted).toBe(true);
    await doneWithin(child, 1000);
    expect(childCount(parent)).toBe(0);
  });

  it("done resolves on cancel, and a signal read after the cancel is already aborted", async () => {
    const [ctx, cancel] = withCancel(background());
    const done = ctx.done;
    cancel();
    await doneWithin(ctx, 1000);
    await done;
    expect(ctx.signal.aborted).toBe(true);
  });

  it("background is never done and has no deadline", () => {
    const bg = background();
    expect(bg.err).toBeUndefined();
    expect(bg.deadline).toBeUndefined();
    expect(bg.signal.aborted).toBe(false);
    expect(cause(bg)).toBeUndefined();
  });
});

describe("deadlines", () => {
  it("a child's deadline never exceeds its parent's", () => {
    const soon = new Date(Date.now() + 10_000);
    const [parent, cancel] = withDeadline(background(), soon);
    const [later] = withDeadline(parent, new Date(Date.now() + 60_000));
    const [plain] = withCancel(parent);
    const [earlier] = withTimeout(parent, 1_000);
    expect(later.deadline?.getTime()).toBe(soon.getTime());
    expect(plain.deadline?.getTime()).toBe(soon.getTime());
    expect(earlier.deadline?.getTime()).toBeLessThan(soon.getTime());
    cancel();
  });

  it("a deadline fires DeadlineExceeded on the context and its children", async () => {
    const [ctx] = withTimeout(background(), 20);
    const [child] = withCancel(ctx);
    await doneWithin(child, 2000);
    expect(ctx.err).toBe(DeadlineExceeded);
    expect(child.err).toBe(DeadlineExceeded);
    expect(cause(ctx)).toBe(DeadlineExceeded);
    expect(ctx.signal.reason).toBe(DeadlineExceeded);
  });

  it("a deadline that expires detaches the context from its parent", async () => {
    const [root, cancelRoot] = withCancel(background());
    const [ctx] = withTimeout(root, 5);
    expect(childCount(root)).toBe(1);
    await doneWithin(ctx, 2000);
    expect(childCount(root)).toBe(0);
    cancelRoot();
  });

  it("an invalid deadline or timeout is refused with a TypeError, not treated as expired", () => {
    expect(() => withDeadline(background(), new Date(Number.NaN))).toThrow(TypeError);
    expect(() => withTimeout(background(), Number.NaN)).toThrow(/finite number, got NaN/);
    expect(() => withTimeout(background(), Number.POSITIVE_INFINITY)).toThrow(TypeError);
  });

  it("a deadline already in the past cancels at once", () => {
    const [ctx] = withDeadline(background(), new Date(Date.now() - 1));
    expect(ctx.err).toBe(DeadlineExceeded);
  });

  it("cancelling before the deadline clears the timer and keeps Canceled", () => {
    vi.useFakeTimers();
    try {
      const [ctx, cancel] = withTimeout(background(), 1000);
      expect(vi.getTimerCount()).toBe(1);
      cancel();
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(2000);
      expect(ctx.err).toBe(Canceled);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a deadline beyond Node's 24.8-day timer limit is reached in steps, not at once", () => {
    vi.useFakeTimers();
    try {
      const days40 = 40 * 24 * 3600 * 1000;
      const [ctx, cancel] = withTimeout(background(), days40);
      vi.advanceTimersByTime(2 ** 31);
      expect(ctx.err).toBeUndefined();
      vi.advanceTimersByTime(days40 - 2 ** 31 + 10);
      expect(ctx.err).toBe(DeadlineExceeded);
      cancel();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("afterFunc", () => {
  it("runs once after the context is done", async () => {
    const [ctx, cancel] = withCancel(background());
    let runs = 0;
    const ran = new Promise<void>((resolve) => {
      afterFunc(ctx, () => {
        runs++;
        resolve();
      });
    });
    cancel();
    cancel();
    await ran;
    await Promise.resolve();
    expect(runs).toBe(1);
  });

  it("runs at once when the context is already done", async () => {
    const [ctx, cancel] = withCancel(background());
    cancel();
    await new Promise<void>((resolve) => afterFunc(ctx, resolve));
  });

  it("stop() prevents it and reports that it did; a second stop reports false", async () => {
    const [ctx, cancel] = withCancel(background());
    const fn = vi.fn();
    const stop = afterFunc(ctx, fn);
    expect(stop()).toBe(true);
    expect(stop()).toBe(false);
    cancel();
    await ctx.done;
    await new Promise((resolve) => setImmediate(resolve));
    expect(fn).not.toHaveBeenCalled();
  });

  it("stop() after the context is done reports false", async () => {
    const [ctx, cancel] = withCancel(background());
    const ran = new Promise<void>((resolve) => {
      const stop = afterFunc(ctx, resolve);
      cancel();
      expect(stop()).toBe(false);
    });
    await ran;
  });
});

describe("withoutCancel", () => {
  it("ignores the parent's cancel and deadline", () => {
    const [parent, cancel] = withTimeout(background(), 60_000);
    const detached = withoutCancel(parent);
    const [child, cancelChild] = withTimeout(detached, 60_000);
    cancel();
    expect(parent.err).toBe(Canceled);
    expect(detached.err).toBeUndefined();
    expect(detached.deadline).toBeUndefined();
    expect(detached.signal.aborted).toBe(false);
    expect(child.err).toBeUndefined();
    cancelChild();
  });
});

describe("foreign contexts", () => {
  it("a context implemented elsewhere propagates its abort and is unlinked on release", () => {
    const controller = new AbortController();
    const foreign: Context = {
      signal: controller.signal,
      done: new Promise(() => {}),
      get err() {
        return controller.signal.aborted ? Canceled : undefined;
      },
      deadline: undefined,
    };
    const [released, release] = withCancel(foreign);
    release();
    const [ctx] = withCancel(foreign);
    controller.abort("remote");
    expect(released.err).toBe(Canceled);
    expect(cause(released)).toBe(Canceled);
    expect(ctx.err).toBe(Canceled);
    expect(cause(ctx)).toBe("remote");
  });
});

describe("references", () => {
  it("after a million children are created and released under one root, the root holds none", () => {
    const [root, cancelRoot] = withCancel(background());
    for (let i = 0; i < 1_000_000; i++) {
      const [child, cancel] = withCancel(root);
      if (i % 2 === 0) void child.signal;
      cancel();
    }
    expect(childCount(root)).toBe(0);
    const [live] = withCancel(root);
    expect(childCount(root)).toBe(1);
    cancelRoot();
    expect(live.err).toBe(Canceled);
    expect(childCount(root)).toBe(0);
  });
});
