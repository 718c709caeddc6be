import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { type FakeServer, startFakeServer } from "../fakes/fake-server.js";
import { newWallet, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { waitUntil } from "../helpers/wait.js";

interface JobBody {
  id: string;
  status: string;
  stopped_at: string | null;
  resumed_from: string | null;
  resumed_by: string | null;
  executions: {
    key: string;
    status: string;
    output: unknown;
    resumed: boolean;
    started_at: string | null;
  }[];
}

describe.each(DRIVERS)("POST /jobs/:id/resume on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let api: TestApi;
  let gpu: FakeServer;
  let token: string;
  /** Models whose first request hangs (a cancel ends it); every later request is answered. */
  const hangFirst = new Set<string>();
  beforeAll(async () => {
    gpu = await startFakeServer((_req, res, recorded) => {
      const model = recorded.model ?? "";
      if (hangFirst.has(model) && gpu.forModel(model).length === 1) return;
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ echo: recorded.body }));
    });
    api = await startApi(database, { gpu: { kind: "http", url: gpu.url } });
    token = await api.serviceToken("portal", ["jobs:submit", "jobs:read", "jobs:cancel"]);
  });
  afterAll(async () => {
    await api?.close();
    await gpu?.close();
  });

  const get = async (id: string, as = token) =>
    (await (await api.call("GET", `/api/v1/jobs/${id}`, { token: as })).json()) as JobBody;
  const resume = (id: string, as = token) =>
    api.call("POST", `/api/v1/jobs/${id}/resume`, { token: as });

  async function submitDag(tag: string): Promise<string> {
    const res = await api.call("POST", "/api/v1/jobs", {
      token,
      body: {
        executions: [
          { key: "a", provider: "gpu", model: `${tag}-a`, input: { step: 1 } },
          { key: "b", provider: "gpu", model: `${tag}-b`, input: { step: 2 }, depends_on: ["a"] },
          { key: "c", provider: "gpu", model: `${tag}-c`, input: { step: 3 }, depends_on: ["b"] },
        ],
        metadata: { run: tag },
      },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  /** A three-step DAG cancelled while its second step runs: the first completed, the rest not. */
  async function cancelledDag(tag: string): Promise<string> {
    hangFirst.add(`${tag}-b`);
    const id = await submitDag(tag);
    await gpu.waitFor(() => gpu.forModel(`${tag}-b`).length === 1, 10_000, "step b to start");
    const res = await api.call("POST", `/api/v1/jobs/${id}/cancel`, { token, body: {} });
    expect(res.status).toBe(200);
    await waitUntil(async () => (await get(id)).stopped_at !== null, 10_000, "the stop");
    return id;
  }

  it("re-runs only the unfinished steps of a cancelled three-step DAG; the finished one is carried over", async () => {
    const old = await cancelledDag("dag");
    const before = await get(old);
    expect(before.executions.map((e) => e.status)).toEqual(["completed", "cancelled", "cancelled"]);

    const res = await resume(old);
    expect(res.status).toBe(201);
    const fresh = (await res.json()) as JobBody;
    expect(res.headers.get("location")).toBe(`/api/v1/jobs/${fresh.id}`);
    expect(fresh.id).not.toBe(old);
    expect(fresh.resumed_from).toBe(old);
    expect(fresh.executions[0]).toMatchObject({
      key: "a",
      status: "completed",
      resumed: true,
      output: before.executions[0]?.output,
      started_at: before.executions[0]?.started_at,
    });
    expect(fresh.executions.slice(1).map((e) => [e.key, e.status, e.resumed])).toEqual([
      ["b", "pending", false],
      ["c", "pending", false],
    ]);

    await waitUntil(
      async () => (await get(fresh.id)).status === "completed",
      10_000,
      "the resumed job",
    );
    // The provider saw step a once (never again), step b twice (the cancelled try and now), c once.
    expect(gpu.forModel("dag-a")).toHaveLength(1);
    expect(gpu.forModel("dag-b")).toHaveLength(2);
    expect(gpu.forModel("dag-c")).toHaveLength(1);

    const after = await get(old);
    expect(after).toMatchObject({ status: "cancelled", resumed_by: fresh.id });
    const events = (await (
      await api.call("GET", `/api/v1/jobs/${old}/events`, { token })
    ).json()) as { type: string; data: Record<string, unknown> }[];
    expect(events.find((e) => e.type === "resumed")?.data).toMatchObject({
      resumed_by: fresh.id,
      carried_over: ["a"],
    });
  });

  it("is refused for a job resumed already (409 conflict naming resumed_by), running, completed or someone else's", async () => {
    const old = await cancelledDag("twice");
    const first = (await (await resume(old)).json()) as JobBody;
    const again = await resume(old);
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({
      error: { code: "conflict", resumed_by: first.id },
    });

    hangFirst.add("running-a");
    const running = (await (
      await api.call("POST", "/api/v1/jobs", {
        token,
        body: { executions: [{ key: "a", provider: "gpu", model: "running-a", input: {} }] },
      })
    ).json()) as JobBody;
    await gpu.waitFor(() => gpu.forModel("running-a").length === 1, 10_000, "the run");
    const refusedRunning = await resume(running.id);
    expect(refusedRunning.status).toBe(409);
    expect(await refusedRunning.json()).toMatchObject({
      error: { code: "not_resumable", status: "running" },
    });
    await api.call("POST", `/api/v1/jobs/${running.id}/cancel`, { token, body: {} });

    await waitUntil(async () => (await get(first.id)).status === "completed", 10_000, "completion");
    const refusedCompleted = await resume(first.id);
    expect(refusedCompleted.status).toBe(409);
    expect(await refusedCompleted.json()).toMatchObject({
      error: { code: "not_resumable", status: "completed" },
    });

    const stranger = await api.signIn(newWallet());
    expect((await resume(old, stranger)).status).toBe(403);
    expect((await resume("00000000-0000-4000-8000-000000000000")).status).toBe(404);
    const reader = await api.serviceToken("portal", ["jobs:read"]);
    expect((await resume(old, reader)).status).toBe(403);
  });
});
