import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Where Debian keeps the server binaries (initdb, pg_ctl); undefined if none is installed. */
function postgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const [newest] = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return newest === undefined ? undefined : join(root, newest, "bin");
}

/** True where a test can start its own Postgres server (initdb and pg_ctl, and a postgres user). */
export function canRunThrowawayPostgres(): boolean {
  return postgresBin() !== undefined;
}

export interface ThrowawayPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** Stops the server (fast shutdown: sessions are cut, as in a failover). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and deletes its data directory. */
  remove(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A Postgres server of the test's own, on a free loopback port in a temp
 * directory, so a test can take the database away and bring it back
 * without touching the machine's shared server. Runs as the `postgres`
 * user when started as root (initdb refuses root).
 */
export async function startThrowawayPostgres(
  /** More server settings (`-c name=value …`), e.g. a library to preload. */
  extraOptions = "",
): Promise<ThrowawayPostgres> {
  const bin = postgresBin();
  if (bin === undefined) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql");
  const dir = await mkdtemp(join(tmpdir(), "quench-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await chmod(dir, 0o700);
  const as = (cmd: string, args: string[]) =>
    asRoot ? run("runuser", ["-u", "postgres", "--", cmd, ...args]) : run(cmd, args);
  await as(join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200 ${extraOptions}`;
  const pgCtl = (args: string[]) =>
    as(join(bin, "pg_ctl"), ["-D", data, "-l", join(dir, "server.log"), ...args]);
  const start = async () => {
    await pgCtl(["-o", options, "-w", "-t", "30", "start"]);
  };
  const stop = async () => {
    await pgCtl(["-m", "fast", "-w", "-t", "30", "stop"]);
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async remove() {
      await stop().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
