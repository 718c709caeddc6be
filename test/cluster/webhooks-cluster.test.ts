import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { signServiceToken } from "../../src/api/auth/tokens.js";
import { webhookReceiver } from "../fakes/webhook-receiver.js";
import { createTestDatabase, type TestDatabase } from "../helpers/databases.js";
import { rememberSecret } from "../helpers/logs.js";
import { type Spawned, spawnEntry, waitForLogLine } from "../helpers/process.js";
import { waitUntil } from "../helpers/wait.js";

const SECRET = "w".repeat(64);
const onServer = process.env.DATABASE_URL ? describe : describe.skip;
if (!process.env.DATABASE_URL) {
  console.log(
    "skipping the webhook cluster tests: several quench processes need one Postgres server (DATABASE_URL)",
  );
}

onServer("webhooks delivered by a cluster of real processes", () => {
  let t: TestDatabase;
  let dir: string;
  const procs: Spawned[] = [];
  beforeAll(async () => {
    rememberSecret(SECRET);
    dir = await mkdtemp(join(tmpdir(), "quench-webhooks-"));
    await writeFile(
      join(dir, "providers.json"),
      JSON.stringify({ demo: { kind: "demo", tokens_per_second: 2_000, max_tokens: 4 } }),
    );
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      if (p.child.exitCode === null) p.child.kill("SIGKILL");
      await p.exited(10_000).catch(() => {});
    }
    await t?.drop();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function instance(id: string) {
    const p = spawnEntry("src/server.ts", {
      DATABASE_URL: t.url ?? "",
      DATA_DIR: join(dir, id),
      PORT: "0",
      INSTANCE_ID: id,
      PROVIDERS_FILE: join(dir, "providers.json"),
      SERVICE_JWT_SECRET: SECRET,
      WEBHOOK_RETRY_BASE_MS: "100",
      LOG_LEVEL: "debug",
    });
    procs.push(p);
    const { port } = await waitForLogLine(p, (l) => l.msg === "listening", 30_000);
    return { proc: p, base: `http://127.0.0.1:${port}/api/v1` };
  }

  const call = async (base: string, method: string, path: string, body?: unknown) => {
    const token = await signServiceToken(SECRET, {
      sub: "portal",
      scopes: ["jobs:submit", "jobs:read"],
      issuer: "quench-dev",
      audience: "quench",
      expiresInS: 600,
    });
    return fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  };

  const submit = async (base: string) => {
    const res = await call(base, "POST", "/jobs", {
      executions: [{ key: "a", provider: "demo", model: "m", input: { prompt: "hi" } }],
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };

  it("kill -9 while a delivery is pending: a new instance delivers it, same webhook-id", async () => {
    t = await createTestDatabase("postgres");
    let up = false;
    const receiver = await webhookReceiver(() => (up ? 200 : 503));
    try {
      const a = await instance("hooks-a");
      const hook = (await (
        await call(a.base, "POST", "/webhooks", { url: receiver.url })
      ).json()) as {
        id: string;
        secret: string;
      };
      rememberSecret(hook.secret);
      const jobId = await submit(a.base);
      // Two failed attempts recorded: the event waits, pending, for its next one.
      await waitUntil(
        async () => {
          const res = await call(a.base, "GET", `/webhooks/${hook.id}/deliveries`);
          return ((await res.json()) as { deliveries: unknown[] }).deliveries.length >= 2;
        },
        15_000,
        "two failed attempts",
      );
      a.proc.child.kill("SIGKILL");
      await a.proc.exited(10_000);
      const before = receiver.of("job.completed", jobId).length;
      up = true;
      // Had the kill cut an attempt short, its claim would hold the event 15 s at most.
      await instance("hooks-b");
      await receiver.until(
        () => receiver.of("job.completed", jobId).some((r) => r.status === 200),
        30_000,
        "delivery by the new instance",
      );
      const all = receiver.of("job.completed", jobId);
      expect(all.length).toBeGreaterThan(before);
      expect(new Set(all.map((r) => r.headers["webhook-id"])).size).toBe(1);
      const delivered = all.find((r) => r.status === 200);
      if (delivered === undefined) throw new Error("unreachable");
      new Webhook(hook.secret).verify(delivered.body, delivered.headers as Record<string, string>);
    } finally {
      await receiver.close();
    }
  }, 90_000);

  it("two instances on one Postgres deliver each event once per attempt", async () => {
    t = await createTestDatabase("postgres");
    const receiver = await webhookReceiver(() => 200);
    try {
      const [a, b] = await Promise.all([instance("pair-a"), instance("pair-b")]);
      const hook = (await (
        await call(a.base, "POST", "/webhooks", { url: receiver.url, events: ["job.completed"] })
      ).json()) as { secret: string };
      rememberSecret(hook.secret);
      const ids = await Promise.all(
        Array.from({ length: 40 }, (_, i) => submit(i % 2 === 0 ? a.base : b.base)),
      );
      await receiver.until(() => receiver.received.length >= ids.length, 30_000, "every event");
      // Every event recorded delivered on its first attempt: once delivered, no claim can take it again.
      const hookId = (
        (await (await call(b.base, "GET", "/webhooks")).json()) as {
          webhooks: { id: string }[];
        }
      ).webhooks[0]?.id;
      let attempts: { attempt: number; status_code: number }[] = [];
      await waitUntil(
        async () => {
          const res = await call(b.base, "GET", `/webhooks/${hookId}/deliveries`);
          attempts = ((await res.json()) as { deliveries: typeof attempts }).deliveries;
          return attempts.length >= ids.length;
        },
        10_000,
        "every attempt recorded",
      );
      expect(attempts).toHaveLength(ids.length);
      expect(attempts.every((x) => x.attempt === 1 && x.status_code === 200)).toBe(true);
      expect(receiver.received).toHaveLength(ids.length);
      const eventIds = receiver.received.map((r) => r.headers["webhook-id"]);
      expect(new Set(eventIds).size).toBe(eventIds.length);
      const jobs = new Set(
        receiver.received.map((r) => (JSON.parse(r.body) as { data: { id: string } }).data.id),
      );
      expect(jobs).toEqual(new Set(ids));
    } finally {
      await receiver.close();
    }
  });
});
