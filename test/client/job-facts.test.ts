import { describe, expect, it } from "vitest";
import {
  canResume,
  durationText,
  elapsedText,
  promptText,
  queueText,
} from "../../src/client/job-facts.js";

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

  it("says how long a job waited, runs or ran, and what it was asked", () => {
    expect([0, 4_240, 38_900, 185_000, 7_620_000].map(durationText)).toEqual([
      "0.0 s",
      "4.2 s",
      "38 s",
      "3 min 5 s",
      "2 h 7 min",
    ]);
    const t0 = Date.parse("2026-12-04T12:00:00.000Z");
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const job = (o: Partial<Parameters<typeof elapsedText>[0]>) => ({
      status: "queued",
      created_at: at(0),
      started_at: null,
      finished_at: null,
      stopped_at: null,
      ...o,
    });
    expect(elapsedText(job({}), t0 + 3_000)).toBe("queued for 3.0 s");
    expect(elapsedText(job({ status: "running", started_at: at(1_000) }), t0 + 13_500)).toBe(
      "running for 12 s",
    );
    // An ended job's time stops with it: at its stop when cancelled, else at its finish.
    const ran = { started_at: at(1_000), finished_at: at(2_000) };
    expect(elapsedText(job({ status: "completed", ...ran }), t0 + 99_000)).toBe("ran 1.0 s");
    expect(
      elapsedText(job({ status: "cancelled", ...ran, stopped_at: at(2_500) }), t0 + 99_000),
    ).toBe("ran 1.5 s");
    expect(elapsedText(job({ status: "cancelled", finished_at: at(500) }), t0 + 99_000)).toBe("");
    expect(promptText({ prompt: "  Write me a poem " })).toBe("Write me a poem");
    expect(promptText({ prompt: 3 })).toBe("");
    expect(promptText({})).toBe("");
  });
});
