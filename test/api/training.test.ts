import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createParser } from "eventsource-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { listen, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { fakeNvidiaSmi } from "../helpers/nvidia-smi.js";
import { withDeadline } from "../helpers/process.js";
import { waitUntil } from "../helpers/wait.js";

const TRAINER = new URL("../fakes/scripts/trainer.mjs", import.meta.url).pathname;

interface Execution {
  status: string;
  progress: { step: number; total: number; message: string } | null;
  gpu_released_at: string | null;
  error: { code: string; message: string } | null;
}
interface Job {
  id: string;
  status: string;
  stopped_at: string | null;
  executions: Execution[];
}

describe.each(DRIVERS)("training runs through the API on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let dir: string;
  let api: TestApi;
  let server: Awaited<ReturnType<typeof listen>>;
  let token: string;
  let smi: Awaited<ReturnType<typeof fakeNvidiaSmi>>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "quench-training-"));
    smi = await fakeNvidiaSmi(dir, { mode: "normal", lingerMs: 0 });
    const trainer = { kind: "process", command: [process.execPath, TRAINER], grace_ms: 300 };
    api = await startApi(
      database,
      {
        trainer,
        watched: { ...trainer, progress_stall_ms: 300 },
        gpu: { ...trainer, gpu_check: true, gpu_release_timeout_ms: 800 },
      },
      { nvidiaSmi: smi.bin },
    );
    server = await listen(api.app);
    token = await api.serviceToken("lab", ["jobs:submit", "jobs:read", "jobs:cancel"]);
  });
  afterAll(async () => {
    await server?.close();
    await api?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const get = async (id: string) =>
    (await (await api.call("GET", `/api/v1/jobs/${id}`, { token })).json()) as Job;
  const events = async (id: string) =>
    (await (await api.call("GET", `/api/v1/jobs/${id}/events`, { token })).json()) as {
      type: string;
      data: Record<string, unknown>;
    }[];
  async function submit(provider: string, input: Record<string, unknown>): Promise<string> {
    const res = await api.call("POST", "/api/v1/jobs", {
      token,
      body: { executions: [{ key: "train", provider, model: "resnet", input }] },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  it("streams progress events with the report, and the job keeps the last one", async () => {
    const id = await submit("trainer", {
      pidFile: join(dir, "stream.json"),
      runMs: 400,
      reportEveryMs: 25,
      total: 200,
    });
    const res = await fetch(`${server.url}/api/v1/jobs/${id}/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const reports: { step: number; total: number }[] = [];
    let ended = false;
    const parser = createParser({
      onEvent: (e) => {
        const data = JSON.parse(e.data);
        if (e.event === "progress" && data.progress !== null) reports.push(data.progress);
        if (e.event === "end") ended = true;
      },
    });
    const reader = res.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    const decoder = new TextDecoder();
    await withDeadline(
      (async () => {
        while (!ended) {
          const { value, done } = await reader.read();
          if (done) return;
          parser.feed(decoder.decode(value, { stream: true }));
        }
      })(),
      10_000,
      "the stream's end",
    );
    expect(reports.length).toBeGreaterThan(2);
    expect(reports.at(-1)).toMatchObject({ total: 200 });
    const job = await get(id);
    expect(job.status).toBe("completed");
    expect(job.executions[0]?.progress).toMatchObject({ total: 200 });
    expect(job.executions[0]?.progress?.step).toBeGreaterThanOrEqual(reports.at(-1)?.step ?? 0);
  });

  it("a cancel keeps the last report: the job says how far it got", async () => {
    const id = await submit("trainer", {
      pidFile: join(dir, "cancel.json"),
      runMs: 600_000,
      reportEveryMs: 20,
      total: 1000,
    });
    await waitUntil(
      async () => ((await get(id)).executions[0]?.progress?.step ?? 0) >= 3,
      10_000,
      "three reports stored",
    );
    await api.call("POST", `/api/v1/jobs/${id}/cancel`, { token, body: {} });
    await waitUntil(async () => (await get(id)).stopped_at !== null, 10_000, "the stop");
    const job = await get(id);
    expect(job.status).toBe("cancelled");
    expect(job.executions[0]?.progress).toMatchObject({ total: 1000 });
    expect(job.executions[0]?.progress?.step).toBeGreaterThanOrEqual(3);
  });

  it("a run that chatters without progress fails as stalled, its grandchild gone", async () => {
    const pidFile = join(dir, "stalled.json");
    const id = await submit("watched", { pidFile, runMs: 600_000, reportEveryMs: 10, reports: 2 });
    await waitUntil(async () => (await get(id)).status === "failed", 10_000, "the stall");
    const job = await get(id);
    expect(job.executions[0]?.error).toMatchObject({
      code: "stalled",
      message: expect.stringMatching(/no progress report for \d+ ms/),
    });
    expect(job.executions[0]?.progress).toMatchObject({ step: 2 });
    const { grandchild } = JSON.parse(await readFile(pidFile, "utf8")) as { grandchild: number };
    const stat = await readFile(`/proc/${grandchild}/stat`, "utf8").catch(() => "");
    expect(stat === "" || /^\S+ \(.*\) [ZX] /.test(stat)).toBe(true);
  });

  it("records gpu_released_at after the fake nvidia-smi frees the memory, and gpu_not_released when it never does", async () => {
    const freed = join(dir, "gpu-freed.json");
    await smi.set({ mode: "normal", pidFile: freed, lingerMs: 150 });
    const ok = await submit("gpu", { pidFile: freed, runMs: 50 });
    await waitUntil(
      async () => (await get(ok)).executions[0]?.gpu_released_at != null,
      10_000,
      "gpu_released_at",
    );
    const done = await get(ok);
    expect(done.status).toBe("completed");
    expect((await events(ok)).some((e) => e.type === "gpu_released")).toBe(true);

    const stuck = join(dir, "gpu-stuck.json");
    await smi.set({ mode: "normal", pidFile: stuck, lingerMs: null, mib: 8192 });
    const held = await submit("gpu", { pidFile: stuck, runMs: 50 });
    await waitUntil(
      async () => (await events(held)).some((e) => e.type === "gpu_not_released"),
      10_000,
      "gpu_not_released",
    );
    const verdict = (await events(held)).find((e) => e.type === "gpu_not_released");
    const { child } = JSON.parse(await readFile(stuck, "utf8")) as { child: number };
    expect(verdict?.data).toMatchObject({
      held: expect.arrayContaining([{ pid: child, mib: 8192 }]),
    });
    expect((await get(held)).executions[0]?.gpu_released_at).toBeNull();
    const metrics = await (await api.call("GET", "/metrics")).text();
    expect(metrics).toMatch(/quench_gpu_not_released_total\{provider="gpu"\} [1-9]/);
  });
});
