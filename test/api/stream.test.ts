import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { createParser } from "eventsource-parser";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import type { FakeServer } from "../fakes/fake-server.js";
import { openaiStreamServer } from "../fakes/providers.js";
import { HOST, newWallet, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { withDeadline } from "../helpers/process.js";

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

describe.each(DRIVERS)("GET /jobs/:id/stream on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let llm: FakeServer;
  let api: TestApi;
  let base: string;
  let server: ReturnType<typeof serve>;
  beforeAll(async () => {
    llm = await openaiStreamServer({ tokens: 100_000, intervalMs: 5 });
    api = await startApi(database, {
      demo: { kind: "demo", tokens_per_second: 500, max_tokens: 12 },
      llm: { kind: "openai", base_url: llm.url },
    });
    server = serve({ fetch: api.app.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise((resolve) => server.once("listening", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await api?.close();
    await new Promise((resolve) => server.close(resolve));
    await llm?.close();
  });

  /** Opens the stream and collects its events until `stop` says so or the stream ends. */
  async function watch(
    jobId: string,
    token: string,
    stop: (events: SseEvent[]) => boolean = () => false,
  ) {
    const controller = new AbortController();
    const res = await request(`${base}/api/v1/jobs/${jobId}/stream`, {
      headers: { authorization: `Bearer ${token}`, host: HOST },
      signal: controller.signal,
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("text/event-stream");
    const events: SseEvent[] = [];
    const parser = createParser({
      onEvent: (e) => events.push({ event: e.event ?? "message", data: JSON.parse(e.data) }),
    });
    const decoder = new TextDecoder();
    const read = (async () => {
      try {
        for await (const chunk of res.body) {
          parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
          if (stop(events)) {
            controller.abort();
            break;
          }
        }
      } catch (err) {
        if (!controller.signal.aborted) throw err;
      }
      return events;
    })();
    return { events, done: withDeadline(read, 20_000, "the stream did not end"), controller };
  }

  async function submit(token: string, provider: string) {
    const res = await api.call("POST", "/api/v1/jobs", {
      token,
      body: {
        executions: [
          {
            key: "chat",
            provider,
            model: "m",
            input: { messages: [{ role: "user", content: "hi" }] },
          },
        ],
      },
    });
    return ((await res.json()) as { id: string }).id;
  }

  it("a client sees job, execution, progress and end for a job that runs, then the stream closes", async () => {
    const token = await api.signIn(newWallet());
    const id = await submit(token, "demo");
    const events = await (await watch(id, token)).done;
    const names = events.map((e) => e.event);
    expect(names[0]).toBe("job");
    expect(names).toContain("execution");
    expect(names).toContain("progress");
    expect(names.at(-1)).toBe("end");
    expect(events.at(-1)?.data).toEqual({ status: "completed" });
    const lastJob = events.filter((e) => e.event === "job").at(-1);
    expect(lastJob?.data).toMatchObject({ id, status: "completed" });
    const progress = events.filter((e) => e.event === "progress").at(-1);
    expect(progress?.data).toMatchObject({ key: "chat", output: { text: expect.any(String) } });
  });

  it("a client sees a cancelled job end as cancelled", async () => {
    const token = await api.signIn(newWallet());
    const id = await submit(token, "llm");
    const watching = await watch(id, token);
    await withDeadline(
      (async () => {
        while (!watching.events.some((e) => e.event === "progress"))
          await new Promise((r) => setTimeout(r, 10));
      })(),
      10_000,
      "no progress event",
    );
    expect((await api.call("POST", `/api/v1/jobs/${id}/cancel`, { token })).status).toBe(200);
    const events = await watching.done;
    expect(events.at(-1)).toEqual({ event: "end", data: { status: "cancelled" } });
    expect(events.filter((e) => e.event === "job").at(-1)?.data).toMatchObject({
      status: "cancelled",
    });
  });

  it("a finished job's stream gives the snapshot and end at once", async () => {
    const token = await api.signIn(newWallet());
    const id = await submit(token, "llm");
    await api.call("POST", `/api/v1/jobs/${id}/cancel`, { token });
    const events = await (await watch(id, token)).done;
    expect(events.map((e) => e.event)).toEqual(["job", "end"]);
  });

  it("disconnecting mid-stream leaves no listener and no stream behind", async () => {
    const token = await api.signIn(newWallet());
    const id = await submit(token, "llm");
    const listenersBefore = api.runner.feed.size();
    await (await watch(id, token, (events) => events.some((e) => e.event === "progress"))).done;
    await withDeadline(
      (async () => {
        while (api.runner.feed.size() > listenersBefore || api.streams.size() > 0) {
          await new Promise((r) => setTimeout(r, 10));
        }
      })(),
      5_000,
      "the stream's listener stayed behind",
    );
    expect(api.streams.size()).toBe(0);
    await api.call("POST", `/api/v1/jobs/${id}/cancel`, { token });
  });

  it("another wallet cannot watch the job", async () => {
    const id = await submit(await api.signIn(newWallet()), "llm");
    const res = await request(`${base}/api/v1/jobs/${id}/stream`, {
      headers: { authorization: `Bearer ${await api.signIn(newWallet())}`, host: HOST },
    });
    expect(res.statusCode).toBe(403);
    await res.body.dump();
    await api.call("POST", "/api/v1/jobs/cancel", {
      token: await api.serviceToken("ops", ["jobs:admin"]),
      body: { job_ids: [id] },
    });
  });
});
