import { describe, expect, it } from "vitest";
import { CancelCause, isCause } from "../../src/providers/causes.js";

describe("CancelCause", () => {
  it("is an Error with a one-line stack, and leaves Error.stackTraceLimit as it was", () => {
    const before = Error.stackTraceLimit;
    const why = new CancelCause("cancelled", "user pressed cancel", "0xabc");
    expect(why).toBeInstanceOf(Error);
    expect(why.stack).toBe("CancelCause: user pressed cancel");
    expect(Error.stackTraceLimit).toBe(before);
    expect(new Error("x").stack?.split("\n").length).toBeGreaterThan(1);
  });

  it("counts as committed unless a pending commit is given", async () => {
    expect(await new CancelCause("shutdown", "bye").committed).toBe(true);
    let commit: (v: boolean) => void = () => {};
    const pending = new CancelCause("cancelled", "x", null, new Promise((r) => (commit = r)));
    commit(false);
    expect(await pending.committed).toBe(false);
  });

  it("isCause matches the code", () => {
    const why = new CancelCause("stalled", "quiet");
    expect(isCause(why, "stalled")).toBe(true);
    expect(isCause(why, "cancelled")).toBe(false);
    expect(isCause(new Error("x"))).toBe(false);
  });
});
