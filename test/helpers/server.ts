import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "./databases.js";
import { type Spawned, spawnEntry, waitForLogLine, withDeadline } from "./process.js";

/** Demo providers fast enough for a test to watch a job end, and slow enough to cancel one. */
export const TEST_PROVIDERS = {
  demo: { kind: "demo", tokens_per_second: 400, max_tokens: 20 },
  slow: { kind: "demo", tokens_per_second: 20, max_tokens: 100_000 },
};

export interface RunningServer {
  url: string;
  /** The server's DATA_DIR and the environment it was started with. */
  env: Record<string, string>;
  proc: Spawned;
  /** SIGTERM, wait for exit 0, keep its log for the secret scan, drop its database and data. */
  stop(): Promise<void>;
}

/**
 * `npm start` as a real process on a loopback port: the embedded database in
 * a temp DATA_DIR, or a fresh database on the server when DATABASE_URL is set.
 */
export async function startServer(
  name: string,
  env: Record<string, string> = {},
  providers: Record<string, unknown> = TEST_PROVIDERS,
): Promise<RunningServer> {
  const dataDir = await mkdtemp(join(tmpdir(), `quench-${name}-`));
  const providersFile = join(dataDir, "providers.json");
  await writeFile(providersFile, JSON.stringify(providers));
  let database: TestDatabase | undefined;
  if (process.env.DATABASE_URL) database = await createTestDatabase("postgres");
  const serverEnv: Record<string, string> = {
    DATA_DIR: dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    INSTANCE_ID: name,
    PROVIDERS_FILE: providersFile,
    LOG_LEVEL: "debug",
    ...(database?.url === undefined ? {} : { DATABASE_URL: database.url }),
    ...env,
  };
  const proc = spawnEntry("src/server.ts", serverEnv);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (proc.child.exitCode === null) proc.child.kill("SIGTERM");
    await proc.exited(20_000).catch(() => proc.child.kill("SIGKILL"));
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    if (env.PORT === undefined) {
      const listening = await waitForLogLine(proc, (l) => l.msg === "listening", 60_000);
      return { url: `http://127.0.0.1:${listening.port}`, env: serverEnv, proc, stop };
    }
    // A fixed port (a quiet LOG_LEVEL prints no "listening" line): wait for /healthz.
    const url = `http://127.0.0.1:${env.PORT}`;
    await withDeadline(
      (async () => {
        for (;;) {
          if (proc.child.exitCode !== null) throw new Error(`exited first: ${proc.stderr()}`);
          const up = await fetch(`${url}/healthz`).then(
            (r) => r.ok,
            () => false,
          );
          if (up) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      })(),
      60_000,
      `the server did not answer on ${url}`,
    );
    return { url, env: serverEnv, proc, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
