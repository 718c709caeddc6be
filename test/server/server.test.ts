import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Spawned, spawnEntry, waitForLogLine } from "../helpers/process.js";

describe("npm start (src/server.ts as a real process)", () => {
  const dirs: string[] = [];
  const procs: Spawned[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) if (p.child.exitCode === null) p.child.kill("SIGKILL");
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function tempDir() {
    const dir = await mkdtemp(join(tmpdir(), "quench-test-"));
    dirs.push(dir);
    return dir;
  }

  it("migrates the embedded database, answers /healthz, and exits 0 on SIGTERM", async () => {
    const server = spawnEntry("src/server.ts", {
      DATA_DIR: await tempDir(),
      PORT: "0",
      INSTANCE_ID: "health-test",
    });
    procs.push(server);
    const listening = await waitForLogLine(server, (l) => l.msg === "listening", 30_000);
    const res = await fetch(`http://127.0.0.1:${listening.port}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: "ok",
      db: "ok",
      instance: "health-test",
      role: "all",
      running_jobs: 0,
    });
    const unknown = await fetch(`http://127.0.0.1:${listening.port}/no/such/route`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "not_found" } });

    server.child.kill("SIGTERM");
    expect(await server.exited(15_000)).toBe(0);
    expect(server.stdout()).toContain('"msg":"stopped"');
  });

  it("a bad configuration value stops the process with one line naming the variable", async () => {
    const server = spawnEntry("src/server.ts", {
      DATA_DIR: await tempDir(),
      PORT: "eighty",
      LEASE_MS: "5",
    });
    procs.push(server);
    expect(await server.exited(15_000)).toBe(1);
    const lines = server.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^quench: invalid configuration: PORT .*"eighty".*; LEASE_MS must be at least 1000/,
    );
  });

  it("production without DATABASE_URL and SESSION_SECRET refuses to start, naming both", async () => {
    const server = spawnEntry("src/server.ts", { NODE_ENV: "production" });
    procs.push(server);
    expect(await server.exited(15_000)).toBe(1);
    expect(server.stderr().trim()).toBe(
      "quench: invalid configuration: DATABASE_URL is required in production; SESSION_SECRET is required in production",
    );
  });
});
