import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { signServiceToken } from "../../src/api/auth/tokens.js";
import type { FakeServer } from "../fakes/fake-server.js";
import { openaiStreamServer } from "../fakes/providers.js";
import { keepSpawnedLog } from "../helpers/logs.js";
import { type Spawned, spawnEntry, waitForLogLine } from "../helpers/process.js";
import {
  canRunThrowawayPostgres,
  startThrowawayPostgres,
  type ThrowawayPostgres,
} from "../helpers/throwaway-postgres.js";
import { waitUntil } from "../helpers/wait.js";

const SECRET = "d".repeat(64);
const JOBS = 40;
const OUTAGE_MS = 10_000;
const onServer = process.env.DATABASE_URL && canRunThrowawayPostgres() ? describe : describe.skip;
if (!process.env.DATABASE_URL) {
  console.log("skipping the database outage tests: they need a Postgres server (DATABASE_URL)");
}

interface JobView {
  id: string;
  instance: string | null;
  status: string;
  attempt: number;
  stopped_at: string | null;
}

onServer("database outages the instances survive", () => {
  let pg: ThrowawayPostgres;
  let provider: FakeServer;
  let dir: string;
  const procs: Spawned[] = [];
  let token: string;

  beforeAll(async () => {
    pg = await startThrowawayPostgres();
    // Each job streams for ~30 s: through both outages and the recoveries.
    provider = await openaiStreamServer({ tokens: 300, intervalMs: 100 });
    dir = await mkdtemp(join(tmpdir(), "quench-outage-"));
    await writeFile(
      join(dir, "providers.json"),
      JSON.stringify({ llm: { kind: "openai", base_url: `${provider.url}/v1`, api_key: "k" } }),
    );
    token = await signServiceToken(SECRET, {
      sub: "ops",
      scopes: ["jobs:admin"],
      issuer: "quench-dev",
      audience: "quench",
      expiresInS: 3600,
    });
  }, 60_000);

  let stopped = 0;
  afterEach(() => {
    for (const p of procs.slice(stopped)) {
      if (p.child.exitCode === null) p.child.kill("SIGKILL");
      keepSpawnedLog(`outage-${stopped++}`, p.stdout() + p.stderr(), {});
    }
  });
  afterAll(async () => {
    await provider?.close();
    await pg?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  /** A quench instance on the throwaway server; LEASE_MS and the rest at their defaults unless given. */
  async function instance(id: string, extra: Record<string, string> = {}): Promise<string> {
    const p = spawnEntry("src/server.ts", {
      DATABASE_URL: pg.url,
      DATA_DIR: join(dir, id),
      PORT: "0",
      INSTANCE_ID: id,
      PROVIDERS_FILE: join(dir, "providers.json"),
      SERVICE_JWT_SECRET: SECRET,
      SHUTDOWN_GRACE_MS: "500",
      ...extra,
    });
    procs.push(p);
    const { port } = await waitForLogLine(p, (l) => l.msg === "listening", 30_000);
    return `http://127.0.0.1:${port}`;
  }

  const api = (base: string, path: string, init: RequestInit = {}) =>
    fetch(`${base}/api/v1${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        ...init.headers,
      },
      signal: init.signal ?? AbortSignal.timeout(30_000),
    });

  async function job(base: string, id: string): Promise<JobView> {
    return (await (await api(base, `/jobs/${id}`)).json()) as JobView;
  }

  async function submitJobs(bases: string[], n: number, tag: string): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await api(bases[i % bases.length] ?? "", "/jobs", {
        method: "POST",
        body: JSON.stringify({
          executions: [{ key: "x", provider: "llm", model: `${tag}-${i}`, input: {} }],
          timeout_ms: 600_000,
        }),
      });
      expect(res.status).toBe(201);
      ids.push(((await res.json()) as { id: string }).id);
    }
    return ids;
  }

  /** Time from the request to its answer, and the answer's status (0: no answer in 30 s). */
  async function timed(base: string, path: string, init: RequestInit = {}) {
    const started = performance.now();
    const res = await api(base, path, init).catch(() => undefined);
    await res?.text();
    return { ms: performance.now() - started, status: res?.status ?? 0 };
  }

  async function allEnded(base: string, ids: string[], ms: number): Promise<JobView[]> {
    await waitUntil(
      async () =>
        (await Promise.all(ids.map((id) => job(base, id)))).every(
          (j) => j.status !== "running" && j.status !== "queued",
        ),
      ms,
      "every job ended",
      500,
    );
    return Promise.all(ids.map((id) => job(base, id)));
  }

  it("two 10 s outages: every job completes on its first attempt without losing its progress, the API answers 503 fast, cancels are honoured", async () => {
    const bases = [
      await instance("outage-a", { RUNNER_CONCURRENCY: "24" }),
      await instance("outage-b", { RUNNER_CONCURRENCY: "24" }),
    ];
    const ids = await submitJobs(bases, JOBS, "two");
    await waitUntil(() => calls(provider, "two-") >= JOBS, 20_000, "every job streaming", 50);
    // RUNNER_CONCURRENCY is a hard cap, through the outages too.
    let mostHeld = 0;
    const capWatch = setInterval(() => {
      for (const b of bases) {
        void fetch(`${b}/healthz`)
          .then((r) => r.json() as Promise<{ running_jobs: number }>)
          .then((h) => {
            mostHeld = Math.max(mostHeld, h.running_jobs);
          })
          .catch(() => {});
      }
    }, 100);
    // One job's cancel goes to its holder while the database is away: it must say it was not recorded.
    const unrecorded = ids[JOBS - 1] ?? "";
    const holderBase =
      bases[(await job(bases[0] ?? "", unrecorded)).instance === "outage-a" ? 0 : 1] ?? "";

    // A live stream opened before the outages follows its job through them to the end.
    const live = await api(bases[0] ?? "", `/jobs/${ids[6]}/stream`, {
      signal: AbortSignal.timeout(180_000),
    });
    expect(live.status).toBe(200);
    const streamed = live.text();
    const during: Array<{ ms: number; status: number }> = [];
    const cancelledInRecovery = ids.slice(0, 4);
    let recoveryCancels: Promise<number[]> = Promise.resolve([]);
    for (let outage = 0; outage < 2; outage++) {
      await pg.stop();
      const down = performance.now();
      if (outage === 1) {
        const refused = await timed(holderBase, `/jobs/${unrecorded}/cancel`, {
          method: "POST",
          body: "{}",
        });
        expect(refused.status).toBe(503);
        during.push(refused);
      }
      while (performance.now() - down < OUTAGE_MS) {
        for (const base of bases) {
          during.push(await timed(base, "/jobs?limit=1"));
          during.push(await timed(base, `/jobs/${ids[5]}`));
          during.push(await timed(base, `/jobs/${ids[5]}/events`));
        }
      }
      if (outage === 1) {
        // Cancels sent as the restart begins, retried by the client while they answer 503.
        recoveryCancels = Promise.all(
          cancelledInRecovery.map(async (id, i) => {
            const deadline = performance.now() + 20_000;
            for (;;) {
              const res = await api(bases[i % 2] ?? "", `/jobs/${id}/cancel`, {
                method: "POST",
                body: "{}",
              });
              await res.text();
              if (res.status !== 503 || performance.now() > deadline) return res.status;
            }
          }),
        );
      }
      await pg.start();
      const up = performance.now();
      await waitUntil(
        async () => (await Promise.all(bases.map((b) => fetch(`${b}/healthz`)))).every((r) => r.ok),
        10_000,
        "healthz 200 on every instance",
        20,
      );
      console.log(
        `outage ${outage + 1}: /healthz 200 ${Math.round(performance.now() - up)} ms after the restart`,
      );
    }
    expect(await recoveryCancels).toEqual([200, 200, 200, 200]);
    const sorted = during.map((d) => d.ms).sort((a, b) => a - b);
    const p99 = sorted[Math.floor(sorted.length * 0.99)] ?? 0;
    console.log(
      `during the outages: ${during.length} requests, statuses ${JSON.stringify(countBy(during.map((d) => d.status)))}, p50 ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, p99 ${Math.round(p99)} ms`,
    );
    expect(during.filter((d) => d.status !== 503)).toEqual([]);
    expect(p99).toBeLessThan(3_000);

    const ended = await allEnded(bases[0] ?? "", ids, 90_000);
    clearInterval(capWatch);
    const stream = await streamed;
    expect(stream).toMatch(/event: end\ndata: \{"status":"completed"\}/);
    console.log(
      `statuses ${JSON.stringify(countBy(ended.map((j) => j.status)))} attempts ${JSON.stringify(countBy(ended.map((j) => j.attempt)))} provider calls ${calls(provider, "two-")} most held ${mostHeld}`,
    );
    for (const [i, j] of ended.entries()) {
      if (i < cancelledInRecovery.length) {
        expect(j.status).toBe("cancelled");
        expect(j.stopped_at).not.toBeNull();
      } else {
        expect(j.status).toBe("completed");
      }
      expect(j.attempt).toBe(1);
    }
    // Only the job whose cancel failed mid-outage restarted its work; none other lost its progress.
    expect(calls(provider, "two-")).toBe(JOBS + 1);
    expect(mostHeld).toBeLessThanOrEqual(24);
  }, 240_000);

  it("an outage longer than the lease: the fenced jobs run again without spending an attempt", async () => {
    const base = await instance("outage-short-lease", { LEASE_MS: "3000" });
    const ids = await submitJobs([base], 6, "lease");
    await waitUntil(() => calls(provider, "lease-") >= 6, 20_000, "every job streaming", 50);
    await pg.stop();
    const down = performance.now();
    // The outage's length is this test's input: twice the lease.
    await new Promise((resolve) => setTimeout(resolve, 6_000 - (performance.now() - down)));
    await pg.start();
    const ended = await allEnded(base, ids, 90_000);
    expect(ended.map((j) => [j.status, j.attempt])).toEqual(ids.map(() => ["completed", 1]));
    expect(calls(provider, "lease-")).toBe(12);
  }, 180_000);
});

/** Provider requests for the models of one test (their names start with `tag-`). */
function calls(provider: FakeServer, tag: string): number {
  return provider.requests.filter((r) => r.model?.startsWith(tag)).length;
}

function countBy<T extends string | number>(values: T[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[String(v)] = (out[String(v)] ?? 0) + 1;
  return out;
}
