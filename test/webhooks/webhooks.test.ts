import { eq, sql } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { webhookEvents } from "../../src/db/schema.js";
import { purgeOldDeliveries } from "../../src/db/webhook-attempts.js";
import { webhookReceiver } from "../fakes/webhook-receiver.js";
import { newWallet, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { rememberSecret } from "../helpers/logs.js";
import { waitUntil } from "../helpers/wait.js";

interface Registered {
  id: string;
  url: string;
  events: string[];
  owner: string | null;
  secret: string;
}

type Receiver = Awaited<ReturnType<typeof webhookReceiver>>;

describe.each(DRIVERS)("webhooks on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let api: TestApi;
  let token: string;
  let admin: string;
  const receivers: Receiver[] = [];
  beforeAll(async () => {
    api = await startApi(
      database,
      {
        demo: { kind: "demo", tokens_per_second: 2_000, max_tokens: 5 },
        slow: { kind: "demo", tokens_per_second: 20, max_tokens: 100_000 },
      },
      { webhooks: { retryBaseMs: 20 } },
    );
    token = await api.serviceToken("portal", ["jobs:submit", "jobs:read", "jobs:cancel"]);
    admin = await api.serviceToken("ops", ["jobs:admin"]);
  });
  afterAll(async () => {
    await api?.close();
  });
  afterEach(async () => {
    // Each test's webhooks go, so one test's events never reach another's receiver.
    const res = await api.call("GET", "/api/v1/webhooks", { token: admin });
    for (const w of ((await res.json()) as { webhooks: { id: string }[] }).webhooks) {
      await api.call("DELETE", `/api/v1/webhooks/${w.id}`, { token: admin });
    }
    for (const r of receivers.splice(0)) await r.close();
  });

  async function receiver(...args: Parameters<typeof webhookReceiver>) {
    const r = await webhookReceiver(...args);
    receivers.push(r);
    return r;
  }

  async function register(body: Record<string, unknown>, as = token): Promise<Registered> {
    const res = await api.call("POST", "/api/v1/webhooks", { token: as, body });
    expect(res.status, await res.clone().text()).toBe(201);
    const hook = (await res.json()) as Registered;
    rememberSecret(hook.secret);
    return hook;
  }

  async function submit(provider = "demo", as = token): Promise<string> {
    const res = await api.call("POST", "/api/v1/jobs", {
      token: as,
      body: { executions: [{ key: "a", provider, model: "m", input: { prompt: "hi" } }] },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  it("signs every delivery as Standard Webhooks says: the package's verify accepts it unchanged", async () => {
    const r = await receiver();
    const hook = await register({ url: r.url });
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/);
    expect(hook.events).toContain("job.completed");
    const listed = await (await api.call("GET", "/api/v1/webhooks", { token })).json();
    expect(JSON.stringify(listed)).not.toContain(hook.secret);

    const jobId = await submit();
    await r.until(() => r.of("job.completed", jobId).length === 1, 10_000, "job.completed");
    const [got] = r.of("job.completed", jobId);
    if (got === undefined) throw new Error("unreachable");
    // The README snippet of the standardwebhooks package, as a receiver would run it.
    const wh = new Webhook(hook.secret);
    const verified = wh.verify(got.body, got.headers as Record<string, string>) as {
      type: string;
      timestamp: string;
      data: { id: string; status: string; executions: unknown[] };
    };
    expect(verified).toMatchObject({
      type: "job.completed",
      data: { id: jobId, status: "completed" },
    });
    expect(verified.data.executions).toHaveLength(1);
    expect(got.headers["webhook-id"]).toMatch(/^msg_[0-9a-f]{32}$/);
    // A body changed in transit, or signed with another secret, fails.
    expect(() => wh.verify(`${got.body} `, got.headers as Record<string, string>)).toThrow();
    const other = new Webhook(`whsec_${Buffer.alloc(32, 1).toString("base64")}`);
    expect(() => other.verify(got.body, got.headers as Record<string, string>)).toThrow();

    // The attempt is recorded once the receiver's answer is in: wait for it.
    let deliveries: { deliveries: Record<string, unknown>[] } = { deliveries: [] };
    await waitUntil(
      async () => {
        deliveries = (await (
          await api.call("GET", `/api/v1/webhooks/${hook.id}/deliveries`, { token })
        ).json()) as typeof deliveries;
        return deliveries.deliveries.length === 1;
      },
      5_000,
      "the attempt recorded",
    );
    expect(deliveries.deliveries[0]).toMatchObject({
      event_id: got.headers["webhook-id"],
      type: "job.completed",
      job_id: jobId,
      attempt: 1,
      status_code: 200,
      next_attempt_at: null,
    });
    expect(deliveries.deliveries[0]?.delivered_at).toEqual(expect.any(String));
    // The job's audit trail names the attempt.
    const trail = (await (
      await api.call("GET", `/api/v1/jobs/${jobId}/events`, { token })
    ).json()) as { type: string; data: Record<string, unknown> }[];
    expect(trail.find((e) => e.type === "webhook_delivery")?.data).toMatchObject({
      event_id: got.headers["webhook-id"],
      event: "job.completed",
      attempt: 1,
      outcome: "delivered",
      status_code: 200,
    });
  });

  it("keeps finished events a week, pending ones until they are delivered or given up", async () => {
    const r = await receiver(() => 500);
    const hook = await register({ url: r.url, events: ["job.completed"] });
    const jobId = await submit();
    await r.until(() => r.of("job.completed", jobId).length >= 1, 10_000, "an attempt");
    const db = database.db;
    await db
      .update(webhookEvents)
      .set({ createdAt: sql`now() - interval '8 days'` })
      .where(eq(webhookEvents.webhookId, hook.id));
    expect(await purgeOldDeliveries(db)).toBe(0); // still pending: never dropped
    await db
      .update(webhookEvents)
      .set({ state: "failed" })
      .where(eq(webhookEvents.webhookId, hook.id));
    expect(await purgeOldDeliveries(db)).toBeGreaterThanOrEqual(1);
    const left = await db.select().from(webhookEvents).where(eq(webhookEvents.webhookId, hook.id));
    expect(left).toEqual([]);
  });

  it("retries a receiver that fails twice with the same webhook-id and body, then records it delivered", async () => {
    const r = await receiver((n) => (n <= 2 ? 500 : 204));
    const hook = await register({ url: r.url, events: ["job.completed"] });
    const jobId = await submit();
    await r.until(() => r.received.length === 3, 10_000, "three attempts");
    const ids = new Set(r.received.map((x) => x.headers["webhook-id"]));
    expect(ids.size).toBe(1);
    expect(new Set(r.received.map((x) => x.body)).size).toBe(1);
    for (const x of r.received)
      new Webhook(hook.secret).verify(x.body, x.headers as Record<string, string>);
    await waitUntil(
      async () => {
        const d = (await (
          await api.call("GET", `/api/v1/webhooks/${hook.id}/deliveries`, { token })
        ).json()) as { deliveries: { attempt: number }[] };
        return d.deliveries.length === 3;
      },
      5_000,
      "three attempts recorded",
    );
    const d = (await (
      await api.call("GET", `/api/v1/webhooks/${hook.id}/deliveries`, { token })
    ).json()) as { deliveries: Record<string, unknown>[] };
    expect(d.deliveries.map((x) => [x.attempt, x.status_code, x.job_id])).toEqual([
      [3, 204, jobId],
      [2, 500, jobId],
      [1, 500, jobId],
    ]);
    expect(d.deliveries[1]?.next_attempt_at).toEqual(expect.any(String));
    expect(d.deliveries[0]?.delivered_at).toEqual(expect.any(String));
  });

  it("tells a cancel twice: job.cancelled at the change, job.stopped with cancel_to_stop_ms at the stop", async () => {
    const r = await receiver();
    await register({ url: r.url });
    const jobId = await submit("slow");
    await waitUntil(
      async () =>
        (
          (await (await api.call("GET", `/api/v1/jobs/${jobId}`, { token })).json()) as {
            status: string;
          }
        ).status === "running",
      10_000,
      "the job to run",
    );
    const res = await api.call("POST", `/api/v1/jobs/${jobId}/cancel`, { token, body: {} });
    expect(res.status).toBe(200);
    // Both are sent; in which order they arrive is not promised (they may go out together).
    await r.until(
      () => r.of("job.stopped", jobId).length === 1 && r.of("job.cancelled", jobId).length === 1,
      10_000,
      "job.cancelled and job.stopped",
    );
    expect(r.of("job.cancelled", jobId)).toHaveLength(1);
    const stopped = JSON.parse(r.of("job.stopped", jobId)[0]?.body ?? "{}");
    expect(stopped.data).toMatchObject({
      id: jobId,
      status: "cancelled",
      cancel_to_stop_ms: expect.any(Number),
    });
    expect(r.of("job.completed", jobId)).toHaveLength(0);
  });

  it("a queued job's cancel sends cancelled and stopped at once", async () => {
    const r = await receiver();
    await register({ url: r.url, events: ["job.cancelled", "job.stopped"] });
    // More jobs than the runner's 16 slots: once it holds 16, the others stay
    // queued while nothing ends. They are cancelled first, on their own: a
    // cancel of a running job frees a slot that a queued one would fill.
    const ids = await Promise.all(Array.from({ length: 20 }, () => submit("slow")));
    const statuses = async () =>
      Promise.all(
        ids.map(async (id) => {
          const res = await api.call("GET", `/api/v1/jobs/${id}`, { token });
          return { id, status: ((await res.json()) as { status: string }).status };
        }),
      );
    let queued: string[] = [];
    await waitUntil(
      async () => {
        const now = await statuses();
        queued = now.filter((x) => x.status === "queued").map((x) => x.id);
        return now.filter((x) => x.status === "running").length === 16;
      },
      10_000,
      "the runner to hold 16",
    );
    expect(queued).toHaveLength(4);
    const cancel = async (jobIds: string[]) => {
      const res = await api.call("POST", "/api/v1/jobs/cancel", {
        token,
        body: { job_ids: jobIds },
      });
      expect(res.status).toBe(200);
      return ((await res.json()) as { results: { previous_status: string }[] }).results;
    };
    expect((await cancel(queued)).map((x) => x.previous_status)).toEqual(
      queued.map(() => "queued"),
    );
    const running = ids.filter((id) => !queued.includes(id));
    expect(new Set((await cancel(running)).map((x) => x.previous_status))).toEqual(
      new Set(["running"]),
    );
    // Both events of every job; their order is not promised.
    await r.until(
      () =>
        r.of("job.stopped").length === ids.length && r.of("job.cancelled").length === ids.length,
      15_000,
      "every cancel and every stop",
    );
    expect(r.of("job.cancelled").length).toBe(ids.length);
    for (const id of queued) {
      expect(JSON.parse(r.of("job.stopped", id)[0]?.body ?? "{}").data.cancel_to_stop_ms).toBe(0);
    }
  });

  it("covers only its owner's jobs; a wallet sees and deletes only its own webhooks (another's is 404)", async () => {
    const r = await receiver();
    const mine = await register({ url: r.url });
    const wallet = await api.signIn(newWallet());
    const jobOfWallet = await submit("demo", wallet);
    const jobOfMine = await submit();
    await r.until(() => r.of("job.completed", jobOfMine).length === 1, 10_000, "own job's event");
    // The wallet's job ended too, but is not the service's: never sent to its webhook.
    await waitUntil(
      async () =>
        (
          (await (
            await api.call("GET", `/api/v1/jobs/${jobOfWallet}`, { token: wallet })
          ).json()) as {
            status: string;
          }
        ).status === "completed",
      10_000,
      "the wallet's job",
    );
    expect(r.of("job.completed", jobOfWallet)).toHaveLength(0);

    expect(
      (await api.call("GET", `/api/v1/webhooks/${mine.id}/deliveries`, { token: wallet })).status,
    ).toBe(404);
    expect(
      (await api.call("DELETE", `/api/v1/webhooks/${mine.id}`, { token: wallet })).status,
    ).toBe(404);
    const theirs = (await (
      await api.call("GET", "/api/v1/webhooks", { token: wallet })
    ).json()) as {
      webhooks: unknown[];
    };
    expect(theirs.webhooks).toEqual([]);
    const forOther = await api.call("POST", "/api/v1/webhooks", {
      token: wallet,
      body: { url: r.url, owner: "service:portal" },
    });
    expect(forOther.status).toBe(403);
    // An admin may cover every job.
    const all = await register({ url: r.url, owner: null }, admin);
    expect(all.owner).toBeNull();
    expect((await api.call("DELETE", `/api/v1/webhooks/${mine.id}`, { token })).status).toBe(204);
    expect(
      (await api.call("GET", `/api/v1/webhooks/${mine.id}/deliveries`, { token })).status,
    ).toBe(404);
  });

  it("a receiver that answers 410 disables the webhook; a redirect is a failed attempt, never followed", async () => {
    const gone = await receiver(() => 410);
    const hook = await register({ url: gone.url, events: ["job.completed"] });
    const target = await receiver();
    const redirecting = await receiver(() => 307, { location: target.url });
    const redirected = await register({ url: redirecting.url, events: ["job.completed"] });
    await submit();
    await gone.until(() => gone.received.length === 1, 10_000, "the 410");
    await redirecting.until(
      () => redirecting.received.length >= 2,
      10_000,
      "a retry after the 307",
    );
    expect(target.received).toHaveLength(0);
    await waitUntil(
      async () => {
        const list = (await (await api.call("GET", "/api/v1/webhooks", { token })).json()) as {
          webhooks: { id: string; disabled_at: string | null }[];
        };
        return list.webhooks.find((w) => w.id === hook.id)?.disabled_at !== null;
      },
      5_000,
      "the webhook disabled",
    );
    await submit();
    const d = (await (
      await api.call("GET", `/api/v1/webhooks/${redirected.id}/deliveries`, { token })
    ).json()) as { deliveries: { status_code: number }[] };
    expect(d.deliveries[0]?.status_code).toBe(307);
    // Disabled: the next job's end is not sent to it.
    await redirecting.until(
      () => redirecting.received.length >= 3,
      10_000,
      "more traffic elsewhere",
    );
    expect(gone.received).toHaveLength(1);
  });

  it("a receiver that hangs holds at most two of the loop's slots: other webhooks' events still go out", async () => {
    const hanging = await receiver(() => "hang");
    const healthy = await receiver();
    await register({ url: hanging.url, events: ["job.completed"] });
    await register({ url: healthy.url, events: ["job.completed"] });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await submit());
    // Twelve events hang on one receiver; the loop has eight slots.
    await healthy.until(
      () => ids.every((id) => healthy.of("job.completed", id).length === 1),
      10_000,
      "every event at the healthy receiver",
    );
    expect(hanging.received.length).toBeLessThanOrEqual(2);
  });

  it("refuses bad registrations with 400 naming the field", async () => {
    const bad = async (body: unknown) => {
      const res = await api.call("POST", "/api/v1/webhooks", { token, body });
      expect(res.status).toBe(400);
      return ((await res.json()) as { error: { code: string; details: { path: string }[] } }).error;
    };
    expect((await bad({ url: "ftp://example.com/x" })).details[0]?.path).toBe("url");
    expect((await bad({ url: "not a url" })).details[0]?.path).toBe("url");
    expect((await bad({ url: "https://user:pw@example.com/" })).details[0]?.path).toBe("url");
    expect((await bad({ url: "https://example.com/", events: ["job.exploded"] })).code).toBe(
      "invalid_request",
    );
    expect((await bad({ url: "https://example.com/", events: [] })).code).toBe("invalid_request");
    expect((await bad({ url: "https://example.com/", extra: 1 })).code).toBe("invalid_request");
    expect(
      (await api.call("POST", "/api/v1/webhooks", { body: { url: "https://example.com/" } }))
        .status,
    ).toBe(401);
  });
});

describe("webhook URL rules in production (https only, no private addresses)", () => {
  let database: Database;
  useTestDatabase("pglite", (fresh) => {
    database = fresh.database;
  });
  let api: TestApi;
  beforeAll(async () => {
    api = await startApi(
      database,
      { demo: { kind: "demo" } },
      { webhooks: { allowHttp: false, allowPrivate: false } },
    );
  });
  afterAll(async () => {
    await api?.close();
  });

  it.each([
    ["http://example.com/hook", "must be https"],
    ["https://127.0.0.1/hook", "private or reserved"],
    ["https://[::1]/hook", "private or reserved"],
    ["https://10.1.2.3/hook", "private or reserved"],
    ["https://169.254.169.254/latest/meta-data", "private or reserved"],
    ["https://[::ffff:192.168.0.1]/hook", "private or reserved"],
    ["https://localhost/hook", "private or reserved"],
  ])("refuses %s", async (url, why) => {
    const token = await api.serviceToken("portal", ["jobs:read"]);
    const res = await api.call("POST", "/api/v1/webhooks", { token, body: { url } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { details: { path: string; message: string }[] } };
    expect(body.error.details[0]?.path).toBe("url");
    expect(body.error.details[0]?.message).toContain(why);
  });
});
