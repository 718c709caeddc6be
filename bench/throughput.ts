import { sql } from "drizzle-orm";
import postgres from "postgres";
import { type Database, migrateDatabase, openDatabase } from "../src/db/connection.js";
import { insertJob } from "../src/db/jobs.js";
import { rowsOf } from "../src/db/rows.js";
import type { ProviderEntry, ProviderRegistry } from "../src/providers/registry.js";
import { startThrowawayPostgres } from "../test/helpers/throwaway-postgres.js";
import { deadline, startBenchRunner, startStreamServer } from "./cancel.js";
import { startJsonServer } from "./json-server.js";

export interface ThroughputResult {
  driver: string;
  provider: "http" | "none";
  jobs: number;
  jobsPerSecond: number;
  /** pg_stat_statements, when the server has it: statements and commits per job, by kind. */
  statements?: {
    perJob: number;
    commitsPerJob: number;
    /** Calls and the server's execution time (µs, `total_exec_time`) per job, by kind. */
    byKind: { kind: string; perJob: number; usPerJob: number }[];
    /** The server's execution time per job, every statement together (µs). */
    usPerJob: number;
  };
}

/**
 * Trivial jobs through one runner (RUNNER_CONCURRENCY 32): each one
 * execution on an `http` provider whose loopback server, in a process of
 * its own (bench/json-server.mjs), answers at once.
 * `jobs` are inserted first, then the runner is woken and timed until every
 * one completed. With `provider: "none"` the execution's provider answers
 * at once without any I/O (a bench-only provider in place of the `http`
 * one): what is left is the runner's own cost (claims, starts, finishes,
 * audit trail, contexts), the figure to hold against a queue's no-op task.
 * With `countStatements`, the run is on a Postgres server of its own with
 * pg_stat_statements preloaded, and the statements and commits
 * of the whole path (submit, claim, executions, events, finish) are counted
 * per job, by kind.
 */
export async function throughputBench(options: {
  jobs: number;
  driver: "pglite" | "postgres";
  countStatements?: boolean;
  provider?: "http" | "none";
}): Promise<ThroughputResult> {
  const provider = options.provider ?? "http";
  const answer = await startJsonServer();
  const stream = await startStreamServer();
  const server = options.countStatements
    ? await startThrowawayPostgres("-c shared_preload_libraries=pg_stat_statements")
    : undefined;
  let database: Database;
  let admin: postgres.Sql | undefined;
  if (options.driver === "postgres") {
    const url = server?.url ?? process.env.DATABASE_URL;
    if (url === undefined) throw new Error("the postgres throughput bench needs DATABASE_URL");
    const name = `quench_bench_tp_${Date.now()}`;
    admin = postgres(url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const dbUrl = new URL(url);
    dbUrl.pathname = `/${name}`;
    database = await openDatabase({ databaseUrl: dbUrl.toString(), maxConnections: 20 });
    (database as { benchName?: string }).benchName = name;
  } else {
    database = await openDatabase({ dataDir: null });
  }
  await migrateDatabase(database);
  const stats = database.postgresClient;
  let parts: Awaited<ReturnType<typeof startBenchRunner>> | undefined;
  try {
    if (options.countStatements && stats) {
      await stats.unsafe("create extension if not exists pg_stat_statements");
      await stats.unsafe("select pg_stat_statements_reset()");
    }
    const commitsBefore = stats ? await commits(stats) : 0;
    // Every job is queued before the runner starts, so the time is the runner's alone.
    const ids: string[] = [];
    for (let i = 0; i < options.jobs; i++) {
      const { job } = await insertJob(database.db, {
        owner: "service:bench",
        timeoutMs: 60_000,
        maxParallel: 1,
        executions: [{ key: "x", provider: "trivial", model: `m${i}`, input: {} }],
      });
      ids.push(job.id);
    }
    // The planner's statistics as a live database has them (autovacuum analyzes
    // a table once a tenth of it changed): the queue filled from empty just now.
    await database.db.execute(sql`analyze`);
    const started = performance.now();
    parts = await startBenchRunner(
      database.db,
      stream.url,
      32,
      { trivial: { kind: "http", url: answer.url, max_concurrency: 64 } },
      provider === "none" ? withoutIo : undefined,
    );
    // Each job's end, from the runner's own feed (waiting costs the database
    // nothing), and those that ended before their listener was added.
    const ended = new Set<string>();
    let allDone: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      allDone = resolve;
    });
    const seen = (id: string) => {
      ended.add(id);
      if (ended.size === options.jobs) allDone();
    };
    for (const id of ids) {
      const off = parts.feed.subscribe(id, (e) => {
        if (e.type !== "end") return;
        off();
        seen(id);
      });
    }
    const finished = await rowsOf<{ id: string }>(
      database.db,
      sql`select id from jobs where status = 'completed'`,
    );
    for (const { id } of finished) seen(id);
    await deadline(done, 600_000, "the jobs did not all complete in 10 minutes");
    const seconds = (performance.now() - started) / 1000;
    const result: ThroughputResult = {
      driver: database.driver,
      provider,
      jobs: options.jobs,
      jobsPerSecond: options.jobs / seconds,
    };
    if (options.countStatements && stats) {
      const rows = await stats.unsafe<{ query: string; calls: string; ms: number }[]>(
        "select query, calls, total_exec_time as ms from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())",
      );
      const byKind = new Map<string, { calls: number; ms: number }>();
      let total = 0;
      let totalMs = 0;
      for (const r of rows) {
        if (
          /pg_stat_statements|count\(\*\)::int as n from jobs|pg_database|xact_commit|^analyze/.test(
            r.query,
          )
        )
          continue;
        const kind = kindOf(r.query);
        const calls = Number(r.calls);
        const ms = Number(r.ms);
        total += calls;
        totalMs += ms;
        const sum = byKind.get(kind) ?? { calls: 0, ms: 0 };
        byKind.set(kind, { calls: sum.calls + calls, ms: sum.ms + ms });
      }
      result.statements = {
        perJob: total / options.jobs,
        commitsPerJob: ((await commits(stats)) - commitsBefore) / options.jobs,
        usPerJob: (totalMs * 1000) / options.jobs,
        byKind: [...byKind]
          .map(([kind, sum]) => ({
            kind,
            perJob: sum.calls / options.jobs,
            usPerJob: (sum.ms * 1000) / options.jobs,
          }))
          .sort((a, b) => b.perJob - a.perJob),
      };
    }
    return result;
  } finally {
    await parts?.close();
    await database.close();
    const name = (database as { benchName?: string }).benchName;
    if (admin !== undefined && name !== undefined) {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
    await server?.stop();
    await server?.remove();
    answer.stop();
    stream.stop();
  }
}

async function commits(sql: postgres.Sql): Promise<number> {
  const [row] = await sql.unsafe<{ n: string }[]>(
    "select xact_commit as n from pg_stat_database where datname = current_database()",
  );
  return Number(row?.n ?? 0);
}

/** "insert jobs", "update executions", "select jobs", "begin", … from a normalized statement. */
function kindOf(query: string): string {
  const q = query.trim().toLowerCase();
  const verb = q.split(/\s+/)[0] ?? "?";
  if (
    verb === "begin" ||
    verb === "commit" ||
    verb === "rollback" ||
    verb === "savepoint" ||
    verb === "release"
  )
    return verb;
  const table =
    /^(?:with .*?\)\s*)?(?:insert into|update|delete from)\s+"?(\w+)"?/s.exec(q)?.[1] ??
    /\bfrom\s+"?(\w+)"?/.exec(q)?.[1] ??
    "?";
  const head = q.startsWith("with")
    ? `with … ${/(insert|update|delete|select)/.exec(q.slice(q.indexOf(")")))?.[1] ?? "select"}`
    : verb;
  return `${head} ${table}`;
}

/** The `trivial` provider with its I/O taken out: every attempt answers `{}` at once. */
function withoutIo(registry: ProviderRegistry): ProviderRegistry {
  const real = registry.get("trivial");
  if (real === undefined) throw new Error("no trivial provider to replace");
  const entry: ProviderEntry = {
    slots: real.slots,
    provider: { ...real.provider, attempt: async () => ({}) },
  };
  return { ...registry, get: (name) => (name === "trivial" ? entry : registry.get(name)) };
}
