import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { background, withCancelCause } from "../../src/context/context.js";
import { ProviderError } from "../../src/providers/errors.js";
import { fakeNvidiaSmi } from "../helpers/nvidia-smi.js";
import { alive, pidsFrom } from "../helpers/pids.js";
import { withDeadline } from "../helpers/process.js";
import { registryOf, rejectionOf, runOn } from "../helpers/providers.js";
import { waitUntil } from "../helpers/wait.js";

const TRAINER = new URL("../fakes/scripts/trainer.mjs", import.meta.url).pathname;
const agent = new Agent();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "quench-progress-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await agent.close();
});

function trainer(extra: Record<string, unknown> = {}, nvidiaSmi?: string) {
  return registryOf(
    {
      trainer: {
        kind: "process",
        command: [process.execPath, TRAINER],
        grace_ms: 300,
        ...extra,
      },
    },
    agent,
    nvidiaSmi === undefined ? {} : { nvidiaSmi },
  );
}

describe("process progress reports", () => {
  it('turns {"progress": …} lines into reports; they are neither output nor tail', async () => {
    const registry = await trainer();
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile: join(dir, "p1.json"), runMs: 300, reportEveryMs: 20, total: 50 },
    });
    expect(await result).toMatchObject({ loss: 0.125 });
    expect(recorded.reports.length).toBeGreaterThan(3);
    expect(recorded.reports[0]).toMatchObject({ step: 1, total: 50, message: "batch 1" });
    const steps = recorded.reports.map((r) => (r as { step: number }).step);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    const tail = (recorded.progress.at(-1) as { stdout_tail: string }).stdout_tail;
    expect(tail).toContain("step 1");
    expect(tail).not.toContain('"progress"');
  });

  it("progress_stall_ms: chatter without progress stops the group as a cancel would, failing as stalled", async () => {
    const registry = await trainer({ progress_stall_ms: 200 });
    const pidFile = join(dir, "stall.json");
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile, runMs: 600_000, reportEveryMs: 10, reports: 3 },
    });
    const failure = await withDeadline(rejectionOf(result), 10_000, "the stall");
    expect(failure).toBeInstanceOf(ProviderError);
    expect(failure).toMatchObject({
      code: "stalled",
      message: expect.stringMatching(/no progress report for \d+ ms/),
    });
    expect(recorded.reports).toHaveLength(3);
    const { child, grandchild } = await pidsFrom(pidFile);
    expect(await alive(child)).toBe(false);
    expect(await alive(grandchild)).toBe(false);
  });

  it("progress_first_ms: no first report in time is a stall too; without it, silence before the first is allowed", async () => {
    const strict = await trainer({ progress_first_ms: 200, progress_stall_ms: 10_000 });
    const [ctx] = withCancelCause(background());
    const { result } = runOn(strict, "trainer", ctx, {
      model: "m",
      input: { pidFile: join(dir, "first.json"), runMs: 600_000 },
    });
    expect(await withDeadline(rejectionOf(result), 10_000, "the stall")).toMatchObject({
      code: "stalled",
      message: expect.stringMatching(/no progress report in the first \d+ ms/),
    });
    const lenient = await trainer({ progress_stall_ms: 100 });
    const [ctx2] = withCancelCause(background());
    const run = runOn(lenient, "trainer", ctx2, {
      model: "m",
      input: { pidFile: join(dir, "lenient.json"), runMs: 400 },
    });
    expect(await run.result).toMatchObject({ loss: 0.125 });
  });
});

describe("GPU release (gpu_check) with a fake nvidia-smi", () => {
  it("records the release once nvidia-smi stops listing every pid the group had", async () => {
    const pidFile = join(dir, "gpu-ok.json");
    const smi = await fakeNvidiaSmi(dir, { mode: "normal", pidFile, mib: 2048, lingerMs: 400 });
    const registry = await trainer({ gpu_check: true, gpu_release_timeout_ms: 5_000 }, smi.bin);
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile, runMs: 600_000 },
    });
    const { child, grandchild } = await pidsFrom(pidFile);
    cancel();
    await rejectionOf(result);
    const settledAt = Date.now();
    // The attempt settled at once; the release comes later, when the fake stops listing the pids.
    expect(recorded.gpuReleases).toEqual([]);
    await waitUntil(() => recorded.gpuReleases.length === 1, 5_000, "the release");
    const release = recorded.gpuReleases[0];
    if (release === undefined || !release.released)
      throw new Error(`not released: ${JSON.stringify(release)}`);
    expect(release.at.getTime() - settledAt).toBeGreaterThanOrEqual(300);
    expect(release.pids).toEqual(expect.arrayContaining([child, grandchild]));
  });

  it("reports gpu_not_released with the pids and MiB still held when the memory never frees", async () => {
    const pidFile = join(dir, "gpu-stuck.json");
    const smi = await fakeNvidiaSmi(dir, { mode: "normal", pidFile, mib: 4096, lingerMs: null });
    const registry = await trainer({ gpu_check: true, gpu_release_timeout_ms: 600 }, smi.bin);
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile, runMs: 50 },
    });
    await result;
    const { child } = await pidsFrom(pidFile);
    await waitUntil(() => recorded.gpuReleases.length === 1, 5_000, "the verdict");
    expect(recorded.gpuReleases[0]).toMatchObject({
      released: false,
      held: expect.arrayContaining([{ pid: child, usedMib: 4096 }]),
      error: null,
    });
  });

  it("a hanging nvidia-smi bounds the wait: the verdict says it did not answer", async () => {
    const pidFile = join(dir, "gpu-hang.json");
    const smi = await fakeNvidiaSmi(dir, { mode: "normal", pidFile, lingerMs: 0 });
    const registry = await trainer({ gpu_check: true, gpu_release_timeout_ms: 700 }, smi.bin);
    await smi.set({ mode: "hang" });
    const [ctx] = withCancelCause(background());
    const started = Date.now();
    const { result, recorded } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile, runMs: 20 },
    });
    await result;
    expect(Date.now() - started).toBeLessThan(3_000); // the attempt never waits for nvidia-smi
    await waitUntil(() => recorded.gpuReleases.length === 1, 5_000, "the verdict");
    expect(recorded.gpuReleases[0]).toMatchObject({
      released: false,
      error: expect.stringContaining("did not answer"),
    });
  });

  it("a missing or failing nvidia-smi is a start-up error naming the provider and NVIDIA_SMI", async () => {
    await expect(trainer({ gpu_check: true }, join(dir, "no-such-nvidia-smi"))).rejects.toThrow(
      /provider "trainer" sets gpu_check, but .*no-such-nvidia-smi.*NVIDIA_SMI/,
    );
    const failing = await fakeNvidiaSmi(dir, { mode: "fail" });
    await expect(trainer({ gpu_check: true }, failing.bin)).rejects.toThrow(
      /couldn't communicate with the NVIDIA driver/,
    );
    // Without gpu_check, nvidia-smi is never asked.
    await expect(trainer({}, join(dir, "no-such-nvidia-smi"))).resolves.toBeDefined();
  });
});
