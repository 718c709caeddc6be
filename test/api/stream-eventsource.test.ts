import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { HOST, listen, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { withDeadline } from "../helpers/process.js";
import { waitUntil } from "../helpers/wait.js";

interface Seen {
  type: string;
  id: string;
  data: Record<string, unknown>;
}

describe.each(DRIVERS)("the job stream for a standard EventSource client on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let api: TestApi;
  let server: Awaited<ReturnType<typeof listen>>;
  let token: string;
  beforeAll(async () => {
    api = await startApi(
      database,
      {
        demo: { kind: "demo", tokens_per_second: 400, max_tokens: 8 },
        slow: { kind: "demo", tokens_per_second: 20, max_tokens: 100_000 },
      },
      { concurrency: 1 },
    );
    server = await listen(api.app);
    token = await api.serviceToken("portal", ["jobs:submit", "jobs:read", "jobs:cancel"]);
  });
  afterAll(async () => {
    await server?.close();
    await api?.close();
  });

  /** An EventSource with the bearer header (the package's documented `fetch` hook). */
  function open(jobId: string): { source: EventSource; seen: Seen[]; requests: number[] } {
    const seen: Seen[] = [];
    const requests: number[] = [];
    const source = new EventSource(`${server.url}/api/v1/jobs/${jobId}/stream`, {
      fetch: async (input, init) => {
        const res = await fetch(input, {
          ...init,
          headers: { ...init.headers, authorization: `Bearer ${token}`, host: HOST },
        });
        requests.push(res.status);
        return res;
      },
    });
    for (const type of ["job", "execution", "progress", "end"]) {
      source.addEventListener(type, (e) => {
        seen.push({ type, id: e.lastEventId, data: JSON.parse(e.data) });
      });
    }
    return { source, seen, requests };
  }

  async function submit(provider: string): Promise<string> {
    const res = await api.call("POST", "/api/v1/jobs", {
      token,
      body: { executions: [{ key: "a", provider, model: "m", input: { prompt: "hi" } }] },
    });
    return ((await res.json()) as { id: string }).id;
  }

  it("ids every event, and after the end a reconnect gets 204 so the client stops for good", async () => {
    const jobId = await submit("demo");
    const { source, seen, requests } = open(jobId);
    await withDeadline(
      new Promise<void>((resolve) => {
        source.addEventListener("error", () => {
          if (source.readyState === EventSource.CLOSED) resolve();
        });
      }),
      20_000,
      "the client to close after the end",
    );
    expect(seen.at(-1)?.type).toBe("end");
    const ids = seen.map((e) => Number(e.id));
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    // The stream closed after `end`; the client reconnected once with Last-Event-ID and got 204.
    expect(requests).toEqual([200, 204]);
  });

  it("sends retry: once, and an execution event for each execution a cancel stops", async () => {
    const res = await api.call("POST", "/api/v1/jobs", {
      token,
      body: {
        executions: [
          { key: "a", provider: "slow", model: "m", input: {} },
          { key: "b", provider: "slow", model: "m", input: {} },
          { key: "c", provider: "slow", model: "m", input: {}, depends_on: ["a"] },
        ],
      },
    });
    const jobId = ((await res.json()) as { id: string }).id;
    const raw = await fetch(`${server.url}/api/v1/jobs/${jobId}/stream`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const reader = raw.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    let text = "";
    const decoder = new TextDecoder();
    const readUntil = async (cond: () => boolean) => {
      while (!cond()) {
        const { value, done } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
      }
    };
    await withDeadline(
      readUntil(() => text.includes('"status":"running"')),
      10_000,
      "running",
    );
    await api.call("POST", `/api/v1/jobs/${jobId}/cancel`, { token, body: {} });
    await withDeadline(
      readUntil(() => text.includes("event: end")),
      10_000,
      "the end",
    );
    expect(text.match(/^retry: \d+$/gm)).toHaveLength(1);
    const executions = [...text.matchAll(/^event: execution\ndata: (.*)$/gm)].map(
      (m) => JSON.parse(m[1] ?? "{}") as { key: string; status: string },
    );
    const cancelled = new Set(executions.filter((e) => e.status === "cancelled").map((e) => e.key));
    expect(cancelled).toEqual(new Set(["a", "b", "c"]));
  });

  it("shows queue positions in claim order under RUNNER_CONCURRENCY=1, and they move up", async () => {
    const blocker = await submit("slow");
    await waitUntil(
      async () =>
        (
          (await (await api.call("GET", `/api/v1/jobs/${blocker}`, { token })).json()) as {
            status: string;
          }
        ).status === "running",
      10_000,
      "the blocker to run",
    );
    const queued = [await submit("demo"), await submit("demo"), await submit("demo")];
    const positions = async () =>
      Promise.all(
        queued.map(
          async (id) =>
            (
              (await (await api.call("GET", `/api/v1/jobs/${id}`, { token })).json()) as {
                queue_position: number | null;
              }
            ).queue_position,
        ),
      );
    expect(await positions()).toEqual([1, 2, 3]);
    const list = (await (
      await api.call("GET", "/api/v1/jobs?status=queued", { token })
    ).json()) as {
      jobs: { id: string; queue_position: number }[];
    };
    expect(list.jobs.map((j) => [j.id, j.queue_position])).toEqual([
      [queued[2], 3],
      [queued[1], 2],
      [queued[0], 1],
    ]);
    const { seen, source } = open(queued[2] as string);
    await waitUntil(() => seen.some((e) => e.type === "job"), 5_000, "the snapshot");
    expect(seen[0]?.data.queue_position).toBe(3);
    await api.call("POST", `/api/v1/jobs/${blocker}/cancel`, { token, body: {} });
    // The others run one at a time; the watched job's position is told as it moves up.
    await waitUntil(() => seen.some((e) => e.type === "end"), 20_000, "the watched job's end");
    source.close();
    const told = seen.filter((e) => e.type === "job").map((e) => e.data.queue_position);
    expect(told[0]).toBe(3);
    expect(told).toContain(null);
    expect(told.filter((p) => p !== null)).toEqual(
      [...told.filter((p) => p !== null)].sort((a, b) => Number(b) - Number(a)),
    );
  });
});
