import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { signServiceToken } from "../../src/api/auth/tokens.js";
import { listEvents } from "../../src/db/events.js";
import { getJob } from "../../src/db/jobs.js";
import type { FakeServer } from "../fakes/fake-server.js";
import { slowJsonServer } from "../fakes/providers.js";
import { createTestDatabase, type TestDatabase } from "../helpers/databases.js";
import { type Spawned, spawnEntry, waitForLogLine, withDeadline } from "../helpers/process.js";

const SECRET = "c".repeat(64);
const onServer = process.env.DATABASE_URL ? describe : describe.skip;
if (!process.env.DATABASE_URL) {
  console.log(
    "skipping the cluster tests: several quench processes need one Postgres server (DATABASE_URL)",
  );
}

onServer("several instances on one Postgres", () => {
  let t: TestDatabase;
  let slow: FakeServer;
  let dir: string;
  const procs: Spawned[] = [];
  beforeAll(async () => {
    t = await createTestDatabase("postgres");
    slow = await slowJsonServer(Number.POSITIVE_INFINITY);
    dir = await mkdtemp(join(tmpdir(), "quench-cluster-"));
    await writeFile(
      join(dir, "providers.json"),
      JSON.stringify({ slow: { kind: "http", url: slow.url } }),
    );
  });
  afterEach(() => {
    for (const p of procs.splice(0)) if (p.child.exitCode === null) p.child.kill("SIGKILL");
  });
  afterAll(async () => {
    await slow?.close();
    await t?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function instance(id: string, role: string, extra: Record<string, string> = {}) {
    const p = spawnEntry("src/server.ts", {
      DATABASE_URL: t.url ?? "",
      DATA_DIR: join(dir, id),
      PORT: "0",
      ROLE: role,
      INSTANCE_ID: id,
      PROVIDERS_FILE: join(dir, "providers.json"),
      SERVICE_JWT_SECRET: SECRET,
      LEASE_MS: "1500",
      CANCEL_POLL_MS: "300",
      CANCEL_ACK_MS: "3000",
      SHUTDOWN_GRACE_MS: "300",
      ...extra,
    });
    procs.push(p);
    const { port } = await waitForLogLine(p, (l) => l.msg === "listening", 30_000);
    return { proc: p, base: `http://127.0.0.1:${port}/api/v1` };
  }

  const token = () =>
    signServiceToken(SECRET, {
      sub: "ops",
      scopes: ["jobs:admin"],
      issuer: "quench-dev",
      audience: "quench",
      expiresInS: 600,
    });

  async function submit(base: string, model: string): Promise<string> {
    const res = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${await token()}`, "content-type": "application/json" },
      body: JSON.stringify({ executions: [{ key: "x", provider: "slow", model, input: {} }] }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  async function cancel(base: string, id: string) {
    const res = await fetch(`${base}/jobs/${id}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${await token()}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it("a job submitted through A (api) runs on B (runner); a cancel through A closes B's socket and is acknowledged", async () => {
    const a = await instance("A", "api");
    await instance("B", "runner");
    const id = await submit(a.base, "cross-1");
    await slow.waitFor(
      () => slow.forModel("cross-1").length === 1,
      15_000,
      "B to call the provider",
    );
    expect((await getJob(t.database.db, id))?.instance).toBe("B");
    const started = performance.now();
    const { status, body } = await cancel(a.base, id);
    expect(status).toBe(200);
    expect(body).toMatchObject({ ok: true, previous_status: "running", context_cancelled: true });
    expect(typeof body.stopped_at).toBe("string");
    await slow.waitFor(
      () => slow.forModel("cross-1")[0]?.closedAt !== undefined,
      5_000,
      "B's socket to close",
    );
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it("with B's notifications cut, the cancel still lands within CANCEL_POLL_MS, and B listens again", async () => {
    const a = await instance("A2", "api");
    const b = await instance("B2", "runner");
    const id = await submit(a.base, "cut-1");
    await slow.waitFor(() => slow.forModel("cut-1").length === 1, 15_000, "B to call the provider");
    const admin = postgres(process.env.DATABASE_URL ?? "", { max: 1, onnotice: () => {} });
    try {
      const killed =
        await admin`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'quench-bus:B2'`;
      expect(killed.length).toBe(1);
    } finally {
      await admin.end();
    }
    const started = performance.now();
    await cancel(a.base, id);
    await slow.waitFor(
      () => slow.forModel("cut-1")[0]?.closedAt !== undefined,
      5_000,
      "B's socket to close",
    );
    expect(performance.now() - started).toBeLessThan(300 + 1_500);
    await withDeadline(
      (async () => {
        while (b.proc.stdout().split('"msg":"listening for cancels"').length < 3) {
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      15_000,
      "B did not listen again",
    );
  });

  it("kill -9 of a runner mid-job: the job is requeued by the reaper and finished by another runner", async () => {
    const a = await instance("A3", "api");
    const b = await instance("B3", "runner");
    const id = await submit(a.base, "orphan-1");
    await slow.waitFor(
      () => slow.forModel("orphan-1").length === 1,
      15_000,
      "B to call the provider",
    );
    b.proc.child.kill("SIGKILL");
    await instance("C3", "runner");
    await slow.waitFor(
      () => slow.forModel("orphan-1").length === 2,
      20_000,
      "another runner to take the job",
    );
    const job = await getJob(t.database.db, id);
    expect(job).toMatchObject({ status: "running", instance: "C3", attempt: 2 });
    const requeued = (await listEvents(t.database.db, id)).find((e) => e.type === "requeued");
    expect(requeued?.data).toMatchObject({ cause: "runner_lost", lost_instance: "B3" });
    await cancel(a.base, id);
  });

  it("SIGTERM of a runner mid-job: it exits 0 within its grace and the job finishes elsewhere, not counted as failed", async () => {
    const a = await instance("A4", "api");
    const runners = { B4: await instance("B4", "runner"), C4: await instance("C4", "runner") };
    const id = await submit(a.base, "rolling-1");
    await slow.waitFor(
      () => slow.forModel("rolling-1").length === 1,
      15_000,
      "a runner to call the provider",
    );
    const holder = (await getJob(t.database.db, id))?.instance as "B4" | "C4";
    const other = holder === "B4" ? "C4" : "B4";
    const started = performance.now();
    runners[holder].proc.child.kill("SIGTERM");
    expect(await runners[holder].proc.exited(5_000)).toBe(0);
    expect(performance.now() - started).toBeLessThan(300 + 3_000);
    await slow.waitFor(
      () => slow.forModel("rolling-1").length === 2,
      15_000,
      "the other runner to take the job",
    );
    expect(await getJob(t.database.db, id)).toMatchObject({
      status: "running",
      instance: other,
      attempt: 1,
    });
    const requeued = (await listEvents(t.database.db, id)).find((e) => e.type === "requeued");
    expect(requeued?.data).toMatchObject({ cause: "shutdown" });
    await cancel(a.base, id);
  });

  it("many jobs across three instances, cancels sent to random instances: every socket closes, each job ran once and ended once", async () => {
    // 30 jobs must all be running at once: 16 slots each (the default 8 would leave some queued).
    const slots = { RUNNER_CONCURRENCY: "16" };
    const nodes = [
      await instance("N1", "all", slots),
      await instance("N2", "all", slots),
      await instance("N3", "all", slots),
    ];
    const pick = (i: number) => nodes[i % nodes.length] as { base: string };
    const total = 30;
    const ids: string[] = [];
    for (let i = 0; i < total; i++) ids.push(await submit(pick(i).base, `many-${i}`));
    await slow.waitFor(
      () => ids.every((_, i) => slow.forModel(`many-${i}`).length >= 1),
      30_000,
      "every job to reach the provider",
    );
    const results = await Promise.all(ids.map((id, i) => cancel(pick(i * 7 + 1).base, id)));
    for (const r of results) expect(r.status).toBe(200);
    await slow.waitFor(
      () => ids.every((_, i) => slow.forModel(`many-${i}`).every((q) => q.closedAt !== undefined)),
      10_000,
      "every job's sockets to close",
    );
    const holders = new Set<string>();
    for (const [i, id] of ids.entries()) {
      expect(slow.forModel(`many-${i}`)).toHaveLength(1); // never run by two runners
      const job = await getJob(t.database.db, id);
      expect(job?.status).toBe("cancelled");
      holders.add(job?.instance ?? "");
      const types = (await listEvents(t.database.db, id)).map((e) => e.type);
      expect(types.filter((type) => type === "cancel_requested")).toHaveLength(1);
      expect(types.filter((type) => type === "stopped")).toHaveLength(1);
      expect(types.filter((type) => type === "finished")).toHaveLength(0);
    }
    expect(holders.size).toBeGreaterThan(1); // the work was shared out
  }, 90_000);
});
