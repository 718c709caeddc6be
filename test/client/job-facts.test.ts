import { describe, expect, it } from "vitest";
import { canResume, queueText } from "../../src/client/job-facts.js";

describe("the job facts the CLI and the dashboard share", () => {
  it("says a queue position as people do", () => {
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112].map(queueText)).toEqual([
      "1st in queue",
      "2nd in queue",
      "3rd in queue",
      "4th in queue",
      "11th in queue",
      "12th in queue",
      "13th in queue",
      "21st in queue",
      "22nd in queue",
      "23rd in queue",
      "101st in queue",
      "111th in queue",
      "112th in queue",
    ]);
    expect(queueText(null)).toBe("");
  });

  it("offers resume only for a job whose work has stopped and that was not resumed yet", () => {
    const job = (status: string, o: Partial<Parameters<typeof canResume>[0]> = {}) => ({
      status,
      started_at: "2026-11-30T00:00:00.000Z",
      stopped_at: null,
      resumed_by: null,
      ...o,
    });
    expect(canResume(job("failed"))).toBe(true);
    expect(canResume(job("partial"))).toBe(true);
    expect(canResume(job("timed_out"))).toBe(true);
    expect(canResume(job("cancelled", { stopped_at: "2026-11-30T00:00:01.000Z" }))).toBe(true);
    expect(canResume(job("cancelled", { started_at: null }))).toBe(true);
    expect(canResume(job("cancelled"))).toBe(false); // still stopping
    expect(canResume(job("completed"))).toBe(false);
    expect(canResume(job("running"))).toBe(false);
    expect(canResume(job("queued"))).toBe(false);
    expect(canResume(job("failed", { resumed_by: "x" }))).toBe(false);
  });
});

describe("progress as people read it", () => {
  it("says step, total, percentage and message; other shapes as short JSON", async () => {
    const { progressText, progressFraction } = await import("../../src/client/job-facts.js");
    expect(progressText({ step: 412, total: 1000, message: "epoch 2" })).toBe(
      "step 412/1000 (41%) epoch 2",
    );
    expect(progressText({ step: 7 })).toBe("step 7");
    expect(progressText({ samples: 3 })).toBe('{"samples":3}');
    expect(progressText(null)).toBe("");
    expect(progressFraction({ step: 1, total: 4 })).toBe(0.25);
    expect(progressFraction({ step: 9, total: 4 })).toBe(1);
    expect(progressFraction({ step: 1 })).toBeUndefined();
  });
});
