import { describe, expect, it } from "vitest";
import { background, cause, childCount, withCancelCause } from "../../src/context/context.js";
import {
  createJobContextManager,
  JobAlreadyRegisteredError,
} from "../../src/runner/job-context-manager.js";

function jobContext() {
  return withCancelCause(background());
}

describe("JobContextManager", () => {
  it("cancels a registered job's context with the given cause and reports it", () => {
    const manager = createJobContextManager();
    const [ctx, cancel] = jobContext();
    expect(manager.register("job-1", ctx, cancel)).toBe(false);
    expect(manager.isRunning("job-1")).toBe(true);
    expect(manager.cancel("job-1", "user")).toBe(true);
    expect(cause(ctx)).toBe("user");
    expect(ctx.signal.reason).toBe("user");
  });

  it("a second cancel of the same job aborts nothing and keeps the first cause", () => {
    const manager = createJobContextManager();
    const [ctx, cancel] = jobContext();
    manager.register("job-1", ctx, cancel);
    expect(manager.cancel("job-1", "user")).toBe(true);
    expect(manager.cancel("job-1", "shutdown")).toBe(false);
    expect(cause(ctx)).toBe("user");
  });

  it("a cancel that arrives before register is remembered and aborts the context on register", () => {
    const manager = createJobContextManager();
    expect(manager.cancel("job-early", "user")).toBe(false);
    expect(manager.pendingCount()).toBe(1);
    const [ctx, cancel] = jobContext();
    expect(manager.register("job-early", ctx, cancel)).toBe(true);
    expect(ctx.signal.aborted).toBe(true);
    expect(cause(ctx)).toBe("user");
    expect(manager.pendingCount()).toBe(0);
  });

  it("a remembered cancel expires after its ttl and no longer aborts", () => {
    let clock = 1_000;
    const manager = createJobContextManager({ pendingCancelTtlMs: 500, now: () => clock });
    manager.cancel("job-late", "user");
    clock += 501;
    const [ctx, cancel] = jobContext();
    expect(manager.register("job-late", ctx, cancel)).toBe(false);
    expect(ctx.err).toBeUndefined();
    expect(manager.pendingCount()).toBe(0);
  });

  it("remembered cancels are bounded in number, oldest dropped first", () => {
    const manager = createJobContextManager({ maxPendingCancels: 3 });
    for (const id of ["a", "b", "c", "d"]) manager.cancel(id, id);
    expect(manager.pendingCount()).toBe(3);
    const [ctxA, cancelA] = jobContext();
    expect(manager.register("a", ctxA, cancelA)).toBe(false);
    const [ctxD, cancelD] = jobContext();
    expect(manager.register("d", ctxD, cancelD)).toBe(true);
    expect(cause(ctxD)).toBe("d");
  });

  it("refuses to register one id twice", () => {
    const manager = createJobContextManager();
    const [ctx, cancel] = jobContext();
    manager.register("job-1", ctx, cancel);
    const [other, cancelOther] = jobContext();
    expect(() => manager.register("job-1", other, cancelOther)).toThrow(JobAlreadyRegisteredError);
    expect(other.err).toBeUndefined();
    expect(manager.count()).toBe(1);
  });

  it("unregister after cancel leaves no entry, held or remembered", () => {
    const manager = createJobContextManager();
    const [ctx, cancel] = jobContext();
    manager.register("job-1", ctx, cancel);
    manager.cancel("job-1", "user");
    expect(manager.unregister("job-1")).toBe(true);
    expect(manager.isRunning("job-1")).toBe(false);
    expect(manager.count()).toBe(0);
    expect(manager.pendingCount()).toBe(0);
    expect(manager.unregister("job-1")).toBe(false);
  });

  it("a job can be registered again after unregister", () => {
    const manager = createJobContextManager();
    const [first, cancelFirst] = jobContext();
    manager.register("job-1", first, cancelFirst);
    manager.unregister("job-1");
    const [second, cancelSecond] = jobContext();
    expect(manager.register("job-1", second, cancelSecond)).toBe(false);
    expect(second.err).toBeUndefined();
  });

  it("cancelAll aborts every live context and counts only the live ones", () => {
    const manager = createJobContextManager();
    const [root, cancelRoot] = withCancelCause(background());
    const contexts = ["a", "b", "c"].map((id) => {
      const [ctx, cancel] = withCancelCause(root);
      manager.register(id, ctx, cancel);
      return ctx;
    });
    manager.cancel("b", "user");
    expect(manager.cancelAll("shutdown")).toBe(2);
    expect(contexts.map((c) => cause(c))).toEqual(["shutdown", "user", "shutdown"]);
    expect(manager.jobIds().sort()).toEqual(["a", "b", "c"]);
    for (const id of manager.jobIds()) manager.unregister(id);
    expect(manager.count()).toBe(0);
    expect(childCount(root)).toBe(0);
    cancelRoot();
  });
});
