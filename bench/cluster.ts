import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import pMap from "p-map";
import { Agent, request } from "undici";
import { signServiceToken } from "../src/api/auth/tokens.js";
import { insertJob } from "../src/db/jobs.js";
import { benchDatabase, deadline } from "./cancel.js";
import { type Stats, summarize } from "./stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SECRET = "d".repeat(64);
const now = () => performance.now();

export interface ClusterBenchResult {
  jobs: number;
  /** POST /jobs/:id/cancel sent to A → B's provider socket closed, with LISTEN/NOTIFY (ms). */
  notified: Stats;
  /** The same with B polling only (LISTEN_NOTIFY=off), CANCEL_POLL_MS as given. */
  polled: Stats;
  pollMs: number;
  /** Trivial jobs completed per second with 1, 2 and 3 runners. */
  throughput: { runners: number; jobs: number; seconds: number; perSecond: number }[];
}

/** A streaming fake provider in this process (neither A nor B): records when each model's socket closes. */
async function streamServer() {
  const closed = new Map<string, number>();
  const opened = new Set<string>();
  const waiters = new Map<string, (at: number) => void>();
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      const model = (JSON.parse(body) as { model: string }).model;
      if (model.startsWith("instant")) {
        res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"choices":[{"delta":{"content":"x"}}]}\n\n');
      opened.add(model);
      req.socket.once("close", () => {
        const at = now();
        closed.set(model, at);
        waiters.get(model)?.(at);
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    opened,
    closedAt: (model: string, ms: number) =>
      closed.has(model)
        ? Promise.resolve(closed.get(model) as number)
        : deadline(
            new Promise<number>((resolve) => waiters.set(model, resolve)),
            ms,
            `${model} never closed`,
          ),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One quench instance as a real process (`node --import tsx src/server.ts`); resolves once it listens. */
async function instance(
  env: Record<string, string>,
): Promise<{ base: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server.ts"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PORT: "0",
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await deadline(
    new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /"port":(\d+),"msg":"listening"/.exec(out);
        if (m) resolve(Number(m[1]));
        if (out.length > 100_000) out = out.slice(-10_000);
      });
      child.once("exit", (code) => reject(new Error(`instance exited with ${code}`)));
    }),
    30_000,
    "an instance did not start",
  );
  child.stdout?.resume();
  return { base: `http://127.0.0.1:${port}/api/v1`, child };
}

export async function clusterBench(
  options: { jobs?: number; pollMs?: number } = {},
): Promise<ClusterBenchResult> {
  if (!process.env.DATABASE_URL)
    throw new Error("the cluster benchmark needs DATABASE_URL (several processes, one server)");
  const jobs = options.jobs ?? 500;
  const pollMs = options.pollMs ?? 200;
  const fake = await streamServer();
  const { database, drop, url } = await benchDatabase();
  const dir = await mkdtemp(join(tmpdir(), "quench-bench-"));
  const providers = join(dir, "providers.json");
  await writeFile(
    providers,
    JSON.stringify({
      gpu: { kind: "openai", base_url: fake.url, max_concurrency: 5_000, stall_ms: 600_000 },
      instant: { kind: "http", url: fake.url },
    }),
  );
  const common = {
    DATABASE_URL: url ?? "",
    PROVIDERS_FILE: providers,
    SERVICE_JWT_SECRET: SECRET,
    RATE_LIMIT_SUBMIT: "0",
    RATE_LIMIT_CANCEL: "0",
    CANCEL_POLL_MS: String(pollMs),
    RUNNER_CONCURRENCY: String(jobs + 10),
  };
  const children: ChildProcess[] = [];
  const start = async (id: string, role: string, extra: Record<string, string> = {}) => {
    const i = await instance({
      ...common,
      DATA_DIR: join(dir, id),
      INSTANCE_ID: id,
      ROLE: role,
      ...extra,
    });
    children.push(i.child);
    return i;
  };
  const stop = async (child: ChildProcess) => {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await deadline(exited, 15_000, "an instance did not stop");
  };
  const client = new Agent({ connections: 32 });
  const token = await signServiceToken(SECRET, {
    sub: "bench",
    scopes: ["jobs:admin"],
    issuer: "quench-dev",
    audience: "quench",
    expiresInS: 3600,
  });
  const call = async (base: string, path: string, body: unknown) => {
    const res = await request(`${base}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      dispatcher: client,
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw new Error(`${path}: ${res.statusCode} ${text}`);
    return JSON.parse(text) as { id: string };
  };

  /** `jobs` jobs submitted through A, all streaming on B, then cancelled one by one through A. */
  const crossCancel = async (a: string, tag: string) => {
    const running = await pMap(
      Array.from({ length: jobs }, (_, i) => `${tag}-${i}`),
      async (model) => ({
        model,
        id: (
          await call(a, "/jobs", {
            executions: [{ key: "c", provider: "gpu", model, input: { messages: [] } }],
          })
        ).id,
      }),
      { concurrency: 16 },
    );
    await deadline(
      (async () => {
        while (!running.every((j) => fake.opened.has(j.model)))
          await new Promise((r) => setTimeout(r, 20));
      })(),
      120_000,
      "not every job started",
    );
    const latencies: number[] = [];
    for (const { id, model } of running) {
      const closed = fake.closedAt(model, pollMs + 10_000);
      const t0 = now();
      await call(a, `/jobs/${id}/cancel`, {});
      latencies.push((await closed) - t0);
    }
    return summarize(latencies);
  };

  try {
    const a = await start("A", "api");
    const b = await start("B", "runner");
    const notified = await crossCancel(a.base, "notified");
    await stop(b.child);
    const bPolling = await start("B-poll", "runner", { LISTEN_NOTIFY: "off" });
    const polled = await crossCancel(a.base, "polled");
    await stop(bPolling.child);

    // Throughput: the jobs are queued first, then the runners start; the rate is
    // measured on the database's clock, from the first claim to the last finish.
    const throughput: ClusterBenchResult["throughput"] = [];
    // Enough jobs that a run lasts seconds, not the runners' start-up (BENCH_CLUSTER_JOBS).
    const trivial = Number(process.env.BENCH_CLUSTER_JOBS ?? 3_000);
    for (const count of [1, 2, 3]) {
      const tag = `instant-${count}-`;
      for (let i = 0; i < trivial; i++) {
        await insertJob(database.db, {
          owner: `service:bench-${count}`,
          timeoutMs: 60_000,
          maxParallel: 1,
          executions: [{ key: "x", provider: "instant", model: `${tag}${i}`, input: {} }],
        });
      }
      const runners = await Promise.all(
        Array.from({ length: count }, (_, r) =>
          start(`T${count}-${r}`, "runner", { RUNNER_CONCURRENCY: "32" }),
        ),
      );
      const owner = `service:bench-${count}`;
      let span = 0;
      await deadline(
        (async () => {
          for (;;) {
            const rows = (await database.db.execute(
              sql`select count(*) filter (where status = 'completed')::int as done,
                         extract(epoch from max(finished_at) - min(started_at))::float8 as span
                  from jobs where owner = ${owner}`,
            )) as unknown as { done: number; span: number | null }[];
            if ((rows[0]?.done ?? 0) >= trivial) {
              span = rows[0]?.span ?? 0;
              return;
            }
            await new Promise((r) => setTimeout(r, 50));
          }
        })(),
        120_000,
        "trivial jobs did not complete",
      );
      throughput.push({ runners: count, jobs: trivial, seconds: span, perSecond: trivial / span });
      for (const r of runners) await stop(r.child);
    }
    return { jobs, notified, polled, pollMs, throughput };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await client.close();
    await fake.close();
    await drop();
    await rm(dir, { recursive: true, force: true });
  }
}
