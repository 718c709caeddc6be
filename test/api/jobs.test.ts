import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import type { FakeServer } from "../fakes/fake-server.js";
import { slowJsonServer } from "../fakes/providers.js";
import { newWallet, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";

const RUNNER_SLOTS = 4;

const job = (model = "m", extra: Record<string, unknown> = {}) => ({
  executions: [{ key: "only", provider: "slow", model, input: { prompt: "hi" } }],
  ...extra,
});

describe.each(DRIVERS)("jobs API on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let slow: FakeServer;
  let fast: FakeServer;
  let api: TestApi;
  beforeAll(async () => {
    slow = await slowJsonServer(Number.POSITIVE_INFINITY);
    fast = await slowJsonServer(0);
    api = await startApi(
      database,
      { slow: { kind: "http", url: slow.url }, fast: { kind: "http", url: fast.url } },
      { concurrency: RUNNER_SLOTS },
    );
  });
  afterAll(async () => {
    await api?.close();
    await slow?.close();
    await fast?.close();
  });
  afterEach(async () => {
    // Nothing left running for the next test.
    const admin = await api.serviceToken("cleanup", ["jobs:admin"]);
    const running = (await (
      await api.call("GET", "/api/v1/jobs?status=running&limit=100", { token: admin })
    ).json()) as { jobs: { id: string }[] };
    const queued = (await (
      await api.call("GET", "/api/v1/jobs?status=queued&limit=100", { token: admin })
    ).json()) as { jobs: { id: string }[] };
    const ids = [...running.jobs, ...queued.jobs].map((j) => j.id);
    if (ids.length > 0)
      await api.call("POST", "/api/v1/jobs/cancel", { token: admin, body: { job_ids: ids } });
  });

  async function submit(
    token: string,
    body: unknown = job(),
    headers: Record<string, string> = {},
  ) {
    const res = await api.call("POST", "/api/v1/jobs", { token, body, headers });
    return {
      res,
      body: (await res.json()) as Record<string, unknown> & { id: string; status: string },
    };
  }

  describe("submit and read", () => {
    it("submits a job (201), shaped as SPEC's job object, and the owner reads it back", async () => {
      const token = await api.serviceToken("portal", ["jobs:submit", "jobs:read"]);
      const { res, body } = await submit(token, job("m", { metadata: { ticket: 7 } }));
      expect(res.status).toBe(201);
      expect(res.headers.get("location")).toBe(`/api/v1/jobs/${body.id}`);
      expect(body).toMatchObject({
        owner: "service:portal",
        status: "queued",
        attempt: 0,
        metadata: { ticket: 7 },
      });
      expect(Object.keys(body).sort()).toEqual(
        [
          "attempt",
          "cancel_reason",
          "cancelled_at",
          "cancelled_by",
          "created_at",
          "deadline_at",
          "error",
          "executions",
          "finished_at",
          "id",
          "instance",
          "metadata",
          "owner",
          "queue_position",
          "resumed_by",
          "resumed_from",
          "started_at",
          "status",
          "stopped_at",
          "usage",
        ].sort(),
      );
      expect(body.usage).toEqual({ gpu_ms: 0, cost_usd: null });
      expect(body).toMatchObject({ resumed_from: null, resumed_by: null });
      expect((body.executions as Record<string, unknown>[])[0]).toMatchObject({
        key: "only",
        provider: "slow",
        model: "m",
        depends_on: [],
        partial: false,
        output: null,
        remote_id: null,
        resumed: false,
        progress: null,
        gpu_released_at: null,
        remote_stop: null,
        usage: { gpu_ms: 0, source: "wall_clock", cost_usd: null },
      });
      const got = await api.call("GET", `/api/v1/jobs/${body.id}`, { token });
      expect(got.status).toBe(200);
      expect(((await got.json()) as { id: string }).id).toBe(body.id);
    });

    it("the same Idempotency-Key returns the same job (200); another body under it is a conflict", async () => {
      const token = await api.serviceToken("idem", ["jobs:submit"]);
      const first = await submit(token, job("a"), { "idempotency-key": "order-17" });
      const again = await submit(token, job("a"), { "idempotency-key": "order-17" });
      expect([first.res.status, again.res.status]).toEqual([201, 200]);
      expect(again.body.id).toBe(first.body.id);
      const other = await submit(token, job("b"), { "idempotency-key": "order-17" });
      expect(other.res.status).toBe(409);
      expect(other.body).toMatchObject({ error: { code: "conflict" } });
    });

    it("refuses invalid bodies with 400 and a details list naming each field", async () => {
      const token = await api.serviceToken("v", ["jobs:submit"]);
      const cases: [unknown, string][] = [
        [{ executions: [] }, "executions"],
        [{ executions: [{ key: "Bad Key", provider: "slow", model: "m" }] }, "executions.0.key"],
        [{ executions: [{ key: "a", provider: "nowhere", model: "m" }] }, "executions.0.provider"],
        [
          { executions: [{ key: "a", provider: "slow", model: "m", depends_on: ["b"] }] },
          "executions.0.depends_on.0",
        ],
        [
          {
            executions: [
              { key: "a", provider: "slow", model: "m", depends_on: ["b"] },
              { key: "b", provider: "slow", model: "m", depends_on: ["a"] },
            ],
          },
          "executions",
        ],
        [{ executions: [{ key: "a", provider: "slow", model: "m" }], surprise: true }, "body"],
      ];
      for (const [body, path] of cases) {
        const res = await api.call("POST", "/api/v1/jobs", { token, body });
        expect(res.status).toBe(400);
        const error = (
          (await res.json()) as { error: { code: string; details: { path: string }[] } }
        ).error;
        expect(error.code).toBe("invalid_request");
        expect(error.details.map((d) => d.path)).toContain(path);
      }
      const notJson = await api.call("POST", "/api/v1/jobs", {
        token,
        body: "{nope",
        headers: { "content-type": "application/json" },
      });
      expect(notJson.status).toBe(400);
      const tooBig = await api.call("POST", "/api/v1/jobs", {
        token,
        body: { pad: "x".repeat(1_100_000) },
      });
      expect(tooBig.status).toBe(413);
      expect(await tooBig.json()).toMatchObject({ error: { code: "payload_too_large" } });
    });

    it("a token without the scope is forbidden; another wallet's job is 403; an unknown id is 404", async () => {
      const readOnly = await api.serviceToken("ro", ["jobs:read"]);
      expect(
        (await api.call("POST", "/api/v1/jobs", { token: readOnly, body: job() })).status,
      ).toBe(403);
      const alice = await api.signIn(newWallet());
      const bob = await api.signIn(newWallet());
      const { body } = await submit(alice);
      const res = await api.call("GET", `/api/v1/jobs/${body.id}`, { token: bob });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: "forbidden" } });
      for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-uuid"]) {
        const missing = await api.call("GET", `/api/v1/jobs/${id}`, { token: alice });
        expect(missing.status).toBe(404);
        expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
      }
    });

    it("lists a principal's own jobs newest first, with a cursor, filtered by status", async () => {
      const token = await api.signIn(newWallet());
      const ids: string[] = [];
      const created: { id: string; at: string }[] = [];
      // Slow jobs: the one cancelled below must still be live (an instant one may finish first).
      for (let i = 0; i < 5; i++) {
        const { body } = await submit(token, job(`list-${i}`));
        ids.push(body.id);
        created.push({ id: body.id, at: String(body.created_at) });
      }
      await api.call("POST", `/api/v1/jobs/${ids[4]}/cancel`, { token });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const q = `/api/v1/jobs?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
        const page = (await (await api.call("GET", q, { token })).json()) as {
          jobs: { id: string }[];
          next_cursor: string | null;
        };
        seen.push(...page.jobs.map((j) => j.id));
        cursor = page.next_cursor;
      } while (cursor !== null && seen.length < 20);
      // Newest first; jobs submitted within one millisecond (the stored precision) tie, and the id decides.
      const newestFirst = created
        .sort((a, b) => (a.at === b.at ? b.id.localeCompare(a.id) : b.at.localeCompare(a.at)))
        .map((c) => c.id);
      expect(seen).toEqual(newestFirst);
      const cancelled = (await (
        await api.call("GET", "/api/v1/jobs?status=cancelled", { token })
      ).json()) as { jobs: { id: string }[] };
      expect(cancelled.jobs.map((j) => j.id)).toEqual([ids[4]]);
      expect((await api.call("GET", "/api/v1/jobs?cursor=garbage", { token })).status).toBe(400);
      expect((await api.call("GET", "/api/v1/jobs?limit=1000", { token })).status).toBe(400);
    });

    it("an admin submits on behalf of a wallet, and that wallet sees the job", async () => {
      const admin = await api.serviceToken("ops", ["jobs:admin"]);
      const wallet = newWallet();
      const { res, body } = await submit(admin, job("m", { owner: wallet.address.toLowerCase() }));
      expect(res.status).toBe(201);
      expect(body.owner).toBe(wallet.address);
      const mine = await api.call("GET", `/api/v1/jobs/${body.id}`, {
        token: await api.signIn(wallet),
      });
      expect(mine.status).toBe(200);
      const notAdmin = await submit(
        await api.serviceToken("x", ["jobs:submit"]),
        job("m", { owner: wallet.address }),
      );
      expect(notAdmin.res.status).toBe(403);
    });
  });

  describe("cancel", () => {
    it("the owner cancels a running job: 200 with SPEC's response, and the provider socket closes", async () => {
      const token = await api.signIn(newWallet());
      const { body } = await submit(token, job("cancel-me"));
      await slow.waitFor(
        () => slow.forModel("cancel-me").length === 1,
        10_000,
        "the provider request",
      );
      const res = await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, {
        token,
        body: { reason: "changed my mind" },
      });
      expect(res.status).toBe(200);
      const result = (await res.json()) as Record<string, unknown>;
      expect(result).toMatchObject({
        ok: true,
        job_id: body.id,
        previous_status: "running",
        new_status: "cancelled",
        context_cancelled: true,
        executions_cancelled: 1,
      });
      expect(typeof result.cancelled_at).toBe("string");
      expect(typeof result.stopped_at).toBe("string");
      await slow.waitFor(
        () => slow.forModel("cancel-me")[0]?.closedAt !== undefined,
        5000,
        "the socket to close",
      );
      const events = (await (
        await api.call("GET", `/api/v1/jobs/${body.id}/events`, { token })
      ).json()) as { type: string; data: Record<string, unknown> }[];
      expect(events.map((e) => e.type)).toContain("cancel_requested");
      expect(events.find((e) => e.type === "stopped")?.data.cancel_to_stop_ms).toBeTypeOf("number");
    });

    it("a queued job is cancelled before it starts (context_cancelled false)", async () => {
      const token = await api.serviceToken("q", ["jobs:submit", "jobs:cancel"]);
      // Every runner slot busy: the next job stays queued.
      for (let i = 0; i < RUNNER_SLOTS; i++) await submit(token, job(`blocker-${i}`));
      await slow.waitFor(
        () =>
          Array.from(
            { length: RUNNER_SLOTS },
            (_, i) => slow.forModel(`blocker-${i}`).length,
          ).every((n) => n === 1),
        10_000,
        "every slot busy",
      );
      const { body } = await submit(token, job("never-runs"));
      const res = await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, { token });
      expect(await res.json()).toMatchObject({
        ok: true,
        previous_status: "queued",
        context_cancelled: false,
      });
      expect(slow.forModel("never-runs")).toHaveLength(0);
    });

    it("401 without a token, 403 for another wallet, 404 unknown, 409 for a finished job", async () => {
      const alice = await api.signIn(newWallet());
      const { body } = await submit(alice, {
        executions: [{ key: "k", provider: "fast", model: "done-fast" }],
      });
      expect((await api.call("POST", `/api/v1/jobs/${body.id}/cancel`)).status).toBe(401);
      const bob = await api.signIn(newWallet());
      expect(
        (await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, { token: bob })).status,
      ).toBe(403);
      expect(
        (
          await api.call("POST", "/api/v1/jobs/00000000-0000-4000-8000-000000000000/cancel", {
            token: alice,
          })
        ).status,
      ).toBe(404);
      await fast.waitFor(() => fast.forModel("done-fast").length === 1, 10_000, "the job to run");
      for (let i = 0; i < 100; i++) {
        const status = (
          (await (await api.call("GET", `/api/v1/jobs/${body.id}`, { token: alice })).json()) as {
            status: string;
          }
        ).status;
        if (status === "completed") break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const res = await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, { token: alice });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({
        error: { code: "not_cancellable", status: "completed" },
      });
    });

    it("a job held here is authorized from memory: another wallet or a token without the scope gets 403", async () => {
      const alice = await api.signIn(newWallet());
      const { body } = await submit(alice, job("held-elsewhere-owner"));
      await slow.waitFor(
        () => slow.forModel("held-elsewhere-owner").length === 1,
        10_000,
        "the job to run",
      );
      expect(api.runner.runner.heldOwner(body.id)).toBe(body.owner);
      const bob = await api.signIn(newWallet());
      const res = await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, { token: bob });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: "forbidden" } });
      const readOnly = await api.serviceToken("ro", ["jobs:read"]);
      expect(
        (await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, { token: readOnly })).status,
      ).toBe(403);
      expect(slow.forModel("held-elsewhere-owner")[0]?.closedAt).toBeUndefined();
      const after = (await (
        await api.call("GET", `/api/v1/jobs/${body.id}`, { token: alice })
      ).json()) as { status: string };
      expect(after.status).toBe("running");
    });

    it("an admin cancels any job, recorded in cancelled_by", async () => {
      const owner = await api.signIn(newWallet());
      const { body } = await submit(owner, job("admin-cancel"));
      const admin = await api.serviceToken("ops", ["jobs:admin"]);
      expect(
        (
          await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, {
            token: admin,
            body: { reason: "abuse" },
          })
        ).status,
      ).toBe(200);
      const after = (await (
        await api.call("GET", `/api/v1/jobs/${body.id}`, { token: owner })
      ).json()) as Record<string, unknown>;
      expect(after).toMatchObject({
        status: "cancelled",
        cancelled_by: "service:ops",
        cancel_reason: "abuse",
      });
    });

    it("bulk cancel reports each job's outcome", async () => {
      const token = await api.signIn(newWallet());
      const other = await api.signIn(newWallet());
      const mine = (await submit(token, job("bulk-1"))).body.id;
      const theirs = (await submit(other, job("bulk-2"))).body.id;
      const done = (await submit(token, job("bulk-3"))).body.id;
      await api.call("POST", `/api/v1/jobs/${done}/cancel`, { token });
      const unknown = "00000000-0000-4000-8000-000000000000";
      const res = await api.call("POST", "/api/v1/jobs/cancel", {
        token,
        body: { job_ids: [mine, theirs, done, unknown, "junk"], reason: "bulk" },
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { results: Record<string, unknown>[]; cancelled: number };
      expect(body.cancelled).toBe(1);
      expect(
        body.results.map((r) => [
          r.job_id,
          r.ok,
          (r.error as { code?: string } | undefined)?.code ?? null,
        ]),
      ).toEqual([
        [mine, true, null],
        [theirs, false, "forbidden"],
        [done, false, "not_cancellable"],
        [unknown, false, "not_found"],
        ["junk", false, "not_found"],
      ]);
      expect(body.results[2]?.previous_status).toBe("cancelled");
    });
  });

  it("GET /metrics counts submissions, cancels by outcome, cancel-to-stop and running jobs", async () => {
    const token = await api.signIn(newWallet());
    const { body } = await submit(token, job("metrics-1"));
    await slow.waitFor(
      () => slow.forModel("metrics-1").length === 1,
      10_000,
      "the provider request",
    );
    await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, { token });
    await api.call("POST", `/api/v1/jobs/${body.id}/cancel`, { token });
    const res = await api.call("GET", "/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    const value = (series: string) =>
      Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1]);
    expect(value("quench_jobs_submitted_total")).toBeGreaterThanOrEqual(1);
    expect(value('quench_cancel_requests_total{outcome="cancelled"}')).toBeGreaterThanOrEqual(1);
    expect(value('quench_cancel_requests_total{outcome="not_cancellable"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(value('quench_jobs_finished_total{status="cancelled"}')).toBeGreaterThanOrEqual(1);
    expect(value("quench_cancel_to_stop_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(value("quench_running_jobs")).toBeGreaterThanOrEqual(0);
    expect(text).toContain("quench_inflight_executions");
    expect(text).toMatch(
      /quench_provider_request_duration_seconds_count\{provider="slow",outcome="stopped"\} \d+/,
    );
  });

  it("answers CORS only for CORS_ORIGINS, and sets secure headers and a request id", async () => {
    const preflight = (origin: string) =>
      api.call("OPTIONS", "/api/v1/jobs", {
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization",
        },
      });
    const allowed = await preflight("https://portal.test");
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://portal.test");
    expect(allowed.headers.get("access-control-allow-headers")?.toLowerCase()).toContain(
      "authorization",
    );
    const other = await preflight("https://evil.test");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const res = await api.call("GET", "/api/v1/jobs", { headers: { "x-request-id": "trace-123" } });
    expect(res.headers.get("x-request-id")).toBe("trace-123");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
  });
});
