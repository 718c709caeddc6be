import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  DEFAULT_SERVICE_AUDIENCE,
  DEFAULT_SERVICE_ISSUER,
  signServiceToken,
} from "../../src/api/auth/tokens.js";
import { openDatabase } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import { getJob, insertJob } from "../../src/db/jobs.js";
import { createTestDatabase } from "../helpers/databases.js";
import { type Spawned, spawnEntry, waitForLogLine, withDeadline } from "../helpers/process.js";

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

  it("an invalid PROVIDERS_FILE stops the process with one line naming provider and field", async () => {
    const dir = await tempDir();
    const file = join(dir, "providers.json");
    await writeFile(file, JSON.stringify({ gpu: { kind: "http", url: "not a url" } }));
    const server = spawnEntry("src/server.ts", { DATA_DIR: dir, PORT: "0", PROVIDERS_FILE: file });
    procs.push(server);
    expect(await server.exited(15_000)).toBe(1);
    expect(server.stderr().trim()).toBe(
      'quench: invalid providers: provider "gpu" field url: must be an http:// or https:// URL',
    );
  });

  const onServer = process.env.DATABASE_URL ? it : it.skip;
  if (!process.env.DATABASE_URL) {
    console.log(
      "skipping the end-to-end run of npm start: it needs a second process on DATABASE_URL (PGlite is single-process)",
    );
  }
  onServer(
    "runs a job on the demo provider, and requeues it when SIGTERM comes mid-run",
    async () => {
      const t = await createTestDatabase("postgres");
      try {
        const dir = await tempDir();
        const providers = join(dir, "providers.json");
        await writeFile(
          providers,
          JSON.stringify({
            demo: { kind: "demo", tokens_per_second: 200, max_tokens: 10 },
            slow: { kind: "demo", tokens_per_second: 5, max_tokens: 10_000 },
          }),
        );
        const server = spawnEntry("src/server.ts", {
          DATA_DIR: dir,
          PORT: "0",
          DATABASE_URL: t.url ?? "",
          PROVIDERS_FILE: providers,
          INSTANCE_ID: "e2e",
          SHUTDOWN_GRACE_MS: "300",
        });
        procs.push(server);
        await waitForLogLine(server, (l) => l.msg === "listening", 30_000);
        const job = (s: string) => ({
          owner: "service:e2e",
          timeoutMs: 60_000,
          maxParallel: 1,
          executions: [
            {
              key: "chat",
              provider: s,
              model: "demo-1",
              input: { messages: [{ role: "user", content: "hi" }] },
            },
          ],
        });
        const quick = (await insertJob(t.database.db, job("demo"))).job;
        await waitForLogLine(
          server,
          (l) => l.job_id === quick.id && l.msg === "job finished",
          30_000,
        );
        const done = await getJob(t.database.db, quick.id);
        expect(done).toMatchObject({ status: "completed", instance: "e2e" });
        const text = (done?.executions[0]?.output as { text?: string } | undefined)?.text ?? "";
        expect(text.split(" ").filter(Boolean)).toHaveLength(10);

        const long = (await insertJob(t.database.db, job("slow"))).job;
        await withDeadline(
          (async () => {
            while ((await getJob(t.database.db, long.id))?.executions[0]?.status !== "running") {
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          })(),
          30_000,
          "the long job never started",
        );
        server.child.kill("SIGTERM");
        expect(await server.exited(15_000)).toBe(0);
        expect(await getJob(t.database.db, long.id)).toMatchObject({
          status: "queued",
          instance: null,
        });
        expect((await listEvents(t.database.db, long.id)).at(-1)).toMatchObject({
          type: "requeued",
          data: { cause: "shutdown" },
        });
      } finally {
        await t.drop();
      }
    },
  );

  it("SIGTERM mid-job: grace, then the job is aborted with cause shutdown and requeued, SSE ends, exit 0 in time", async () => {
    const dir = await tempDir();
    const providers = join(dir, "providers.json");
    await writeFile(
      providers,
      JSON.stringify({ slow: { kind: "demo", tokens_per_second: 5, max_tokens: 10_000 } }),
    );
    const graceMs = 400;
    const server = spawnEntry("src/server.ts", {
      DATA_DIR: dir,
      PORT: "0",
      PROVIDERS_FILE: providers,
      SHUTDOWN_GRACE_MS: String(graceMs),
      INSTANCE_ID: "draining",
    });
    procs.push(server);
    const { port } = await waitForLogLine(server, (l) => l.msg === "listening", 30_000);
    const base = `http://127.0.0.1:${port}/api/v1`;
    const secrets = JSON.parse(await readFile(join(dir, "secrets.json"), "utf8")) as {
      service_jwt_secret: string;
    };
    const token = await signServiceToken(secrets.service_jwt_secret, {
      sub: "ops",
      scopes: ["jobs:submit", "jobs:read"],
      issuer: DEFAULT_SERVICE_ISSUER,
      audience: DEFAULT_SERVICE_AUDIENCE,
      expiresInS: 600,
    });
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const submitted = await fetch(`${base}/jobs`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        executions: [{ key: "chat", provider: "slow", model: "m", input: { messages: [] } }],
      }),
    });
    expect(submitted.status).toBe(201);
    const { id } = (await submitted.json()) as { id: string };
    const stream = await fetch(`${base}/jobs/${id}/stream`, { headers });
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let seen = "";
    while (!seen.includes('"status":"running"') || !seen.includes("event: progress")) {
      const { value, done } = await withDeadline(
        reader.read(),
        15_000,
        "no progress on the stream",
      );
      if (done) throw new Error(`stream ended early: ${seen}`);
      seen += decoder.decode(value, { stream: true });
    }
    const started = performance.now();
    server.child.kill("SIGTERM");
    const streamEnded = (async () => {
      for (;;) {
        const { done } = await reader.read();
        if (done) return true;
      }
    })();
    expect(await server.exited(graceMs + 5_000)).toBe(0);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(graceMs - 50); // the job was given its grace
    expect(elapsed).toBeLessThan(graceMs + 3_000);
    expect(await withDeadline(streamEnded, 5_000, "the SSE stream did not end")).toBe(true);

    const database = await openDatabase({ dataDir: join(dir, "pglite") });
    try {
      const job = await getJob(database.db, id);
      expect(job).toMatchObject({ status: "queued", instance: null, attempt: 0 }); // a shutdown gives its claim back
      expect(job?.executions[0]?.status).toBe("pending");
      const last = (await listEvents(database.db, id)).at(-1);
      expect(last).toMatchObject({ type: "requeued", data: { cause: "shutdown" } });
    } finally {
      await database.close();
    }
  });
});
