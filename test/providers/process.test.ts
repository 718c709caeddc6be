import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { background, withCancelCause } from "../../src/context/context.js";
import { CancelCause } from "../../src/providers/causes.js";
import { groupAlive } from "../../src/providers/process-group.js";
import { alive, pidsFrom } from "../helpers/pids.js";
import { registryOf, rejectionOf, runOn } from "../helpers/providers.js";

const SCRIPT = new URL("../fakes/scripts/trainer.mjs", import.meta.url).pathname;
const agent = new Agent();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "quench-process-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await agent.close();
});

async function trainer(extra: Record<string, unknown> = {}) {
  return registryOf(
    { trainer: { kind: "process", command: [process.execPath, SCRIPT], grace_ms: 300, ...extra } },
    agent,
  );
}

describe("process provider", () => {
  it("passes the input on stdin and returns the JSON on the last stdout line", async () => {
    const registry = await trainer();
    const pidFile = join(dir, "ok.json");
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "trainer", ctx, {
      model: "resnet",
      input: { pidFile, runMs: 60 },
    });
    expect(await result).toMatchObject({ loss: 0.125 });
    expect((recorded.progress.at(-1) as { stdout_tail: string }).stdout_tail).toContain("step 1");
    const { child, grandchild } = await pidsFrom(pidFile);
    expect(await alive(child)).toBe(false);
    expect(await alive(grandchild)).toBe(false);
  });

  it("a cancel kills the process and its grandchild", async () => {
    const registry = await trainer();
    const pidFile = join(dir, "cancel.json");
    const [ctx, cancel] = withCancelCause(background());
    const { result } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile, runMs: 600_000 },
    });
    const { child, grandchild } = await pidsFrom(pidFile);
    expect(await alive(grandchild)).toBe(true);
    const why = new CancelCause("cancelled", "stop training");
    const started = performance.now();
    cancel(why);
    expect(await rejectionOf(result)).toBe(why);
    expect(performance.now() - started).toBeLessThan(300); // SIGTERM sufficed: no wait for the grace
    expect(await alive(child)).toBe(false);
    expect(await alive(grandchild)).toBe(false);
    expect(await groupAlive(child)).toBe(false);
  });

  it("SIGKILL follows after grace_ms when the process group ignores SIGTERM", async () => {
    const registry = await trainer();
    const pidFile = join(dir, "stubborn.json");
    const [ctx, cancel] = withCancelCause(background());
    const { result } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile, runMs: 600_000, ignoreTerm: true },
    });
    const { child, grandchild } = await pidsFrom(pidFile);
    const started = performance.now();
    cancel(new CancelCause("cancelled", "stop"));
    await rejectionOf(result);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(await alive(child)).toBe(false);
    expect(await alive(grandchild)).toBe(false);
  });

  it("a grandchild left running after a normal exit is stopped too", async () => {
    const registry = await trainer();
    const pidFile = join(dir, "straggler.json");
    const [ctx] = withCancelCause(background());
    const { result } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile, runMs: 10, leaveGrandchild: true },
    });
    expect(await result).toMatchObject({ loss: 0.125 });
    const { grandchild } = await pidsFrom(pidFile);
    expect(await alive(grandchild)).toBe(false);
  });

  it("a non-zero exit fails as process_failed with the exit code", async () => {
    const registry = await trainer();
    const [ctx] = withCancelCause(background());
    const { result } = runOn(registry, "trainer", ctx, {
      model: "m",
      input: { pidFile: join(dir, "fail.json"), runMs: 0, exitCode: 3 },
    });
    expect(await rejectionOf(result)).toMatchObject({
      code: "process_failed",
      message: expect.stringContaining("exited with code 3"),
    });
  });

  it("a command that cannot start fails as process_failed", async () => {
    const registry = await registryOf(
      { p: { kind: "process", command: ["/no/such/binary"] } },
      agent,
    );
    const [ctx] = withCancelCause(background());
    expect(
      await rejectionOf(runOn(registry, "p", ctx, { model: "m", input: {} }).result),
    ).toMatchObject({
      code: "process_failed",
      message: expect.stringContaining("cannot start /no/such/binary"),
    });
  });

  it("the child sees none of quench's environment beyond the basics", async () => {
    process.env.QUENCH_TEST_SECRET = "must-not-leak";
    try {
      const registry = await registryOf(
        {
          env: {
            kind: "process",
            command: [
              process.execPath,
              "-e",
              "process.stdin.resume(); process.stdin.on('end', () => console.log(JSON.stringify(process.env)))",
            ],
            env: { EXTRA: "yes" },
          },
        },
        agent,
      );
      const [ctx] = withCancelCause(background());
      const env = (await runOn(registry, "env", ctx, { model: "m", input: {} }).result) as Record<
        string,
        string
      >;
      expect(env.QUENCH_TEST_SECRET).toBeUndefined();
      expect(env).toMatchObject({ EXTRA: "yes", QUENCH_MODEL: "m", QUENCH_EXECUTION_ID: "exec-1" });
    } finally {
      delete process.env.QUENCH_TEST_SECRET;
    }
  });
});
