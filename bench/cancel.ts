import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { createLocalBus } from "../src/cluster/local-bus.js";
import { type Database, migrateDatabase, openDatabase } from "../src/db/connection.js";
import { insertJob } from "../src/db/jobs.js";
import { createInstance } from "../src/instance.js";
import { createLogger } from "../src/logger.js";
import { parseProviders } from "../src/providers/config.js";
import { createHttpAgent } from "../src/providers/http-client.js";
import { createProviderRegistry, type ProviderRegistry } from "../src/providers/registry.js";
import type { Runner } from "../src/runner/runner.js";
import { type Stats, summarize } from "./stats.js";

export const now = () => performance.timeOrigin + performance.now();

export interface CancelBenchResult {
  jobs: number;
  driver: string;
  /** cancelJob() called → the server saw the job's socket close (ms), one job at a time. */
  oneByOne: Stats;
  /** cancelJob() called → it returned with the stop acknowledgement (ms), one at a time. */
  oneByOneAck: Stats;
  /** All cancelled together: each job's close after the common start (ms). */
  together: Stats;
  /** All cancelled together: the last close after the common start (ms). */
  togetherTotalMs: number;
  heapPerExecutionKb: number;
}

/** The fake provider in its own process: reports opens and closes with absolute times. */
export async function startStreamServer() {
  const child: ChildProcess = fork(new URL("./stream-server.mjs", import.meta.url), {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const opened = new Map<string, number>();
  const closed = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  let onOpen = () => {};
  const port = await deadline(
    new Promise<number>((resolve) => {
      child.on("message", (m: { type: string; model: string; at: number; port: number }) => {
        if (m.type === "listening") resolve(m.port);
        else if (m.type === "open") {
          opened.set(m.model, m.at);
          onOpen();
        } else if (m.type === "closed") {
          closed.set(m.model, m.at);
          waiters.get(m.model)?.(m.at);
        }
      });
    }),
    10_000,
    "stream server did not start",
  );
  return {
    url: `http://127.0.0.1:${port}`,
    opened,
    closed,
    allOpen(models: string[], ms: number) {
      return deadline(
        new Promise<void>((resolve) => {
          const check = () => {
            if (models.every((m) => opened.has(m))) resolve();
          };
          onOpen = check;
          check();
        }),
        ms,
        "not every stream opened",
      );
    },
    closedAt(model: string, ms: number): Promise<number> {
      const at = closed.get(model);
      if (at !== undefined) return Promise.resolve(at);
      return deadline(
        new Promise<number>((resolve) => waiters.set(model, resolve)),
        ms,
        `socket of ${model} not closed within ${ms} ms`,
      ).finally(() => waiters.delete(model));
    },
    stop: () => child.kill(),
  };
}

export async function benchDatabase(): Promise<{
  database: Database;
  /** postgres://… of the bench's own database; undefined on PGlite. */
  url: string | undefined;
  drop: () => Promise<void>;
}> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const database = await openDatabase({ dataDir: null });
    await migrateDatabase(database);
    return { database, url: undefined, drop: () => database.close() };
  }
  const name = `quench_bench_${randomBytes(4).toString("hex")}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const dbUrl = new URL(url);
  dbUrl.pathname = `/${name}`;
  const database = await openDatabase({ databaseUrl: dbUrl.toString(), maxConnections: 10 });
  await migrateDatabase(database);
  return {
    database,
    url: dbUrl.toString(),
    drop: async () => {
      await database.close();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/**
 * A started runner of `jobs` slots on `db`, whose one provider (`gpu`, the
 * openai kind) streams from `providerUrl`: what both cancel benchmarks measure.
 */
export async function startBenchRunner(
  db: Database["db"],
  providerUrl: string,
  jobs: number,
  /** More providers beside `gpu` (raw configuration, as in PROVIDERS_FILE). */
  more: Record<string, unknown> = {},
  /** Replaces some of the built providers (a bench's own, say). */
  wrap: (registry: ProviderRegistry) => ProviderRegistry = (registry) => registry,
) {
  const agent = createHttpAgent();
  const built = await createProviderRegistry(
    parseProviders(
      {
        gpu: { kind: "openai", base_url: providerUrl, max_concurrency: jobs, stall_ms: 600_000 },
        ...more,
      },
      {},
    ),
    agent,
  );
  const providers = wrap(built);
  const logger = createLogger({ level: "silent", instance: "bench" });
  const instance = createInstance({
    db,
    instance: "bench",
    role: "all",
    providers,
    logger,
    bus: createLocalBus(),
    runner: {
      concurrency: jobs,
      leaseMs: 120_000,
      cancelAckMs: 10_000,
      claimPollMs: 50,
      maxAttempts: 3,
      cancelPollMs: 2_000,
    },
    webhooks: { retryBaseMs: 5_000, allowHttp: true, allowPrivate: true },
    defaultMetrics: false,
  });
  await instance.start();
  const runner = instance.runner as Runner;
  const { manager, feed, metrics } = instance;
  return {
    runner,
    manager,
    providers,
    agent,
    feed,
    logger,
    metrics,
    instance,
    /** Stops the instance (runner, loops), then the providers and the HTTP agent; once is enough. */
    async close() {
      await instance.stop(0);
      await built.close();
      await agent.close();
    },
  };
}

export async function cancelBench(
  jobs = 1_000,
  /** Runs once the database is ready (registers webhooks, say); returns its own cleanup. */
  prepare?: (db: Database["db"]) => Promise<() => Promise<void>>,
): Promise<CancelBenchResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with node --expose-gc");
  const server = await startStreamServer();
  const { database, drop } = await benchDatabase();
  const parts = await startBenchRunner(database.db, server.url, jobs);
  const { runner } = parts;
  const cleanup = prepare === undefined ? async () => {} : await prepare(database.db);

  const submit = async (tag: string) => {
    const ids: { id: string; model: string }[] = [];
    for (let i = 0; i < jobs; i++) {
      const model = `${tag}-${i}`;
      const { job } = await insertJob(database.db, {
        owner: "service:bench",
        timeoutMs: 3_600_000,
        maxParallel: 1,
        executions: [{ key: "chat", provider: "gpu", model, input: { messages: [] } }],
      });
      ids.push({ id: job.id, model });
    }
    runner.notifyNewWork();
    await server.allOpen(
      ids.map((j) => j.model),
      120_000,
    );
    return ids;
  };

  try {
    const settle = () => {
      for (let i = 0; i < 3; i++) gc();
      return process.memoryUsage();
    };
    const base = settle();
    const first = await submit("one");
    const loaded = settle();

    const latencies: number[] = [];
    const acks: number[] = [];
    for (const { id, model } of first) {
      const closed = server.closedAt(model, 10_000);
      const t0 = now();
      await runner.cancelJob(id, { actor: "bench" });
      acks.push(now() - t0);
      latencies.push((await closed) - t0);
    }

    const second = await submit("all");
    const t0 = now();
    const closes = second.map(({ model }) => server.closedAt(model, 30_000));
    const calls = second.map(({ id }) => runner.cancelJob(id, { actor: "bench" }));
    if (process.env.BENCH_DEBUG) console.error("sync part of the cancels took", now() - t0, "ms");
    await Promise.all(calls);
    if (process.env.BENCH_DEBUG) console.error("all cancels returned after", now() - t0, "ms");
    const together = (await Promise.all(closes)).map((at) => at - t0);

    return {
      jobs,
      driver: database.driver,
      oneByOne: summarize(latencies),
      oneByOneAck: summarize(acks),
      together: summarize(together),
      togetherTotalMs: Math.max(...together),
      heapPerExecutionKb: (loaded.heapUsed - base.heapUsed) / jobs / 1024,
    };
  } finally {
    await parts.close();
    await cleanup();
    await drop();
    server.stop();
  }
}

export function deadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
