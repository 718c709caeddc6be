import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
  status: string;
  attempt: number;
  stopped_at: string | null;
}

onServer("a database outage the instances survive", () => {
  let pg: ThrowawayPostgres;
  let provider: FakeServer;
  let dir: string;
  const procs: Spawned[] = [];
  const bases: string[] = [];
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
    for (const id of ["a", "b"]) {
      const env = {
        DATABASE_URL: pg.url,
        DATA_DIR: join(dir, id),
        PORT: "0",
        INSTANCE_ID: `outage-${id}`,
        PROVIDERS_FILE: join(dir, "providers.json"),
        SERVICE_JWT_SECRET: SECRET,
        RUNNER_CONCURRENCY: "24",
        LEASE_MS: "15000",
        CANCEL_POLL_MS: "500",
        SHUTDOWN_GRACE_MS: "500",
      };
      const p = spawnEntry("src/server.ts", env);
      procs.push(p);
      const { port } = await waitForLogLine(p, (l) => l.msg === "listening", 30_000);
      bases.push(`http://127.0.0.1:${port}`);
    }
  }, 120_000);

  afterAll(async () => {
    for (const [i, p] of procs.entries()) {
      if (p.child.exitCode === null) p.child.kill("SIGKILL");
      keepSpawnedLog(`outage-${i}`, p.stdout() + p.stderr(), {});
    }
    await provider?.close();
    await pg?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  const api = (base: string, path: string, init: RequestInit = {}) =>
    fetch(`${base}/api/v1${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        ...init.headers,
      },
      signal: AbortSignal.timeout(30_000),
    });

  async function job(id: string): Promise<JobView> {
    const res = await api(bases[0] ?? "", `/jobs/${id}`);
    return (await res.json()) as JobView;
  }

  /** Time from the request to its answer, and the answer's status. */
  async function timed(base: string, path: string, init: RequestInit = {}) {
    const started = performance.now();
    const res = await api(base, path, init).catch(() => undefined);
    await res?.text();
    return { ms: performance.now() - started, status: res?.status ?? 0 };
  }

  it("every job completes on its first attempt, the API answers 503 fast, cancels are honoured", async () => {
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const res = await api(bases[i % 2] ?? "", "/jobs", {
        method: "POST",
        body: JSON.stringify({
          executions: [{ key: "x", provider: "llm", model: `m${i}`, input: {} }],
          timeout_ms: 600_000,
        }),
      });
      expect(res.status).toBe(201);
      ids.push(((await res.json()) as { id: string }).id);
    }
    await waitUntil(() => provider.requests.length >= JOBS, 20_000, "every job streaming", 50);

    const during: Array<{ ms: number; status: number }> = [];
    for (let outage = 0; outage < 2; outage++) {
      await pg.stop();
      const down = performance.now();
      while (performance.now() - down < OUTAGE_MS) {
        for (const base of bases) {
          during.push(await timed(base, "/jobs?limit=1"));
          during.push(await timed(base, `/jobs/${ids[0]}`));
        }
      }
      await pg.start();
      const up = performance.now();
      await waitUntil(
        async () => (await Promise.all(bases.map((b) => fetch(`${b}/healthz`)))).every((r) => r.ok),
        10_000,
        "healthz 200 on every instance",
        50,
      );
      console.log(
        `outage ${outage + 1}: healthz 200 ${Math.round(performance.now() - up)} ms after the restart`,
      );
    }
    const sorted = during.map((d) => d.ms).sort((a, b) => a - b);
    console.log(
      `during the outages: ${during.length} requests, statuses ${JSON.stringify(countBy(during.map((d) => d.status)))}, p50 ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, p99 ${Math.round(sorted[Math.floor(sorted.length * 0.99)] ?? 0)} ms`,
    );
    await waitUntil(
      async () =>
        (await Promise.all(ids.map(job))).every(
          (j) => j.status !== "running" && j.status !== "queued",
        ),
      90_000,
      "every job ended",
      500,
    );
    const ended = await Promise.all(ids.map(job));
    console.log(
      `statuses ${JSON.stringify(countBy(ended.map((j) => j.status)))} attempts ${JSON.stringify(countBy(ended.map((j) => j.attempt)))} provider calls ${provider.requests.length}`,
    );
    expect(ended.filter((j) => j.status !== "completed")).toEqual([]);
    expect(Math.max(...ended.map((j) => j.attempt))).toBe(1);
    expect(during.every((d) => d.status === 200 || d.status === 503)).toBe(true);
  }, 240_000);
});

function countBy<T extends string | number>(values: T[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[String(v)] = (out[String(v)] ?? 0) + 1;
  return out;
}
