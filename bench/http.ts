import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import pMap from "p-map";
import { Agent, request } from "undici";
import { createApp } from "../src/api/app.js";
import { createAuthenticator, signServiceToken } from "../src/api/auth/tokens.js";
import { createStreamRegistry } from "../src/api/streams.js";
import type { Database } from "../src/db/connection.js";
import { benchDatabase, now, startBenchRunner, startStreamServer } from "./cancel.js";
import { type Stats, summarize } from "./stats.js";

export interface HttpBenchResult {
  driver: string;
  jobs: number;
  /** Sending POST /jobs/:id/cancel → the provider process saw the socket close (ms). */
  cancelToClose: Stats;
  /** The same requests: sending → the 200 response (ms), which waits for the stop acknowledgement. */
  cancelResponse: Stats;
  submitted: number;
  submitSeconds: number;
  submitsPerSecond: number;
  /** GET /jobs/:id while the submit loop runs (ms). */
  getDuringLoad: Stats;
}

const SECRET = "b".repeat(64);

/**
 * The quench app on loopback over `database` and a started bench runner, and
 * a client that calls it with a `jobs:admin` service token.
 */
export async function startBenchApi(
  database: Database,
  parts: Awaited<ReturnType<typeof startBenchRunner>>,
) {
  const { runner, manager, providers, agent, feed, logger, metrics } = parts;
  const auth = createAuthenticator({
    sessionSecret: SECRET,
    service: { secret: SECRET, jwksUrl: undefined, issuer: "bench", audience: "quench" },
    agent,
  });
  const app = createApp({
    database,
    logger,
    metrics,
    instance: "bench",
    role: "all",
    runningJobs: () => manager.count(),
    isDraining: () => false,
    api: {
      auth,
      providers,
      feed,
      cancelJob: runner.cancelJob,
      notifyNewWork: () => runner.notifyNewWork(),
      heldOwner: (id) => runner.heldOwner(id),
      streams: createStreamRegistry(),
      siweDomains: ["bench"],
      siweHostFallback: false,
      siweChainIds: [1],
      corsOrigins: [],
      rateLimits: { signIn: 0, submit: 0, cancel: 0 },
      trustFlyClientIp: false,
      webhookRules: { allowHttp: true, allowPrivate: true },
    },
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise((resolve) => server.once("listening", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
  const client = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
  const token = await signServiceToken(SECRET, {
    sub: "bench",
    scopes: ["jobs:admin"],
    issuer: "bench",
    audience: "quench",
    expiresInS: 3_600,
  });
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const call = async (method: "GET" | "POST", path: string, body?: unknown) => {
    const res = await request(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      dispatcher: client,
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
    return JSON.parse(text) as { id: string; executions?: { remote_id: string | null }[] };
  };
  return { call, base, client, server, headers };
}

/**
 * End to end through HTTP on one instance: the API and the runner in one
 * process (as `npm start` runs them), clients on loopback through undici.
 */
export async function httpBench(
  options: { jobs?: number; submits?: number; concurrency?: number } = {},
): Promise<HttpBenchResult> {
  const jobs = options.jobs ?? 1_000;
  const submits = options.submits ?? 2_000;
  const concurrency = options.concurrency ?? 16;
  const fake = await startStreamServer();
  const { database, drop } = await benchDatabase();
  const parts = await startBenchRunner(database.db, fake.url, jobs);
  const { instance } = parts;
  const { call, client, server } = await startBenchApi(database, parts);
  const submit = (model: string) =>
    call("POST", "/jobs", {
      executions: [{ key: "chat", provider: "gpu", model, input: { messages: [] } }],
    });

  try {
    // 1. Cancel through HTTP, jobs streaming.
    const running = await pMap(
      Array.from({ length: jobs }, (_, i) => `http-${i}`),
      async (model) => ({ model, id: (await submit(model)).id }),
      { concurrency },
    );
    await fake.allOpen(
      running.map((j) => j.model),
      120_000,
    );
    const toClose: number[] = [];
    const toResponse: number[] = [];
    for (const { id, model } of running) {
      const closed = fake.closedAt(model, 10_000);
      const t0 = now();
      await call("POST", `/jobs/${id}/cancel`, {});
      toResponse.push(now() - t0);
      toClose.push((await closed) - t0);
    }

    // 2. Submit rate, with GET /jobs/:id measured under that load. The runner is
    // stopped first: the figure is the API's and the store's, not the runner's.
    await instance.stop(0);
    const probe = (await submit("probe")).id;
    let submitting = true;
    const gets: number[] = [];
    const getter = (async () => {
      while (submitting && gets.length < 100_000) {
        const t0 = performance.now();
        await call("GET", `/jobs/${probe}`);
        gets.push(performance.now() - t0);
      }
    })();
    const started = performance.now();
    await pMap(
      Array.from({ length: submits }, (_, i) => `load-${i}`),
      submit,
      { concurrency },
    );
    const seconds = (performance.now() - started) / 1000;
    submitting = false;
    await getter;
    return {
      driver: database.driver,
      jobs,
      cancelToClose: summarize(toClose),
      cancelResponse: summarize(toResponse),
      submitted: submits,
      submitSeconds: seconds,
      submitsPerSecond: submits / seconds,
      getDuringLoad: summarize(gets),
    };
  } finally {
    await parts.close();
    await new Promise((resolve) => server.close(resolve));
    await client.close();
    await drop();
    fake.stop();
  }
}
