import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type QuenchClient } from "../../src/client/client.js";
import { isQuenchError, QuenchError } from "../../src/client/errors.js";
import { signInWithAccount } from "../../src/client/siwe.js";
import type { StreamEvent } from "../../src/client/types.js";
import type { Database } from "../../src/db/connection.js";
import type { FakeServer } from "../fakes/fake-server.js";
import { openaiStreamServer } from "../fakes/providers.js";
import { HOST, listen, newWallet, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { withDeadline } from "../helpers/process.js";

const chat = (provider: string, key = "chat") => ({
  key,
  provider,
  model: "m",
  input: { messages: [{ role: "user" as const, content: "hi" }] },
});

/** The QuenchError `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<QuenchError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof QuenchError)) throw new Error(`want a QuenchError, got ${String(err)}`);
  return err;
}

describe.each(DRIVERS)("quench/client against a real server on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let llm: FakeServer;
  let api: TestApi;
  let server: Awaited<ReturnType<typeof listen>>;
  let client: QuenchClient;
  beforeAll(async () => {
    llm = await openaiStreamServer({ tokens: 100_000, intervalMs: 5 });
    api = await startApi(database, {
      demo: { kind: "demo", tokens_per_second: 500, max_tokens: 12 },
      llm: { kind: "openai", base_url: llm.url },
    });
    server = await listen(api.app);
    client = createClient({ url: server.url });
    await signInWithAccount(client, newWallet(), { domain: HOST });
  });
  afterAll(async () => {
    await api?.close();
    await server?.close();
    await llm?.close();
  });

  it("reports health and signs in with a viem account", async () => {
    expect(await client.health()).toMatchObject({ status: "ok", db: "ok" });
    const wallet = newWallet();
    const other = createClient({ url: server.url });
    const session = await signInWithAccount(other, wallet, { domain: HOST });
    expect(session.address).toBe(wallet.address);
    expect(other.token).toBe(session.token);
    expect(Date.parse(session.expires_at)).toBeGreaterThan(Date.now());
  });

  it("submits, reads, lists and reads the audit trail of a job; an idempotency key returns the same job", async () => {
    const job = await client.submit({ executions: [chat("demo")] }, { idempotencyKey: "k-1" });
    expect(job).toMatchObject({
      status: "queued",
      executions: [{ key: "chat", provider: "demo" }],
    });
    const again = await client.submit({ executions: [chat("demo")] }, { idempotencyKey: "k-1" });
    expect(again.id).toBe(job.id);
    expect((await client.job(job.id)).id).toBe(job.id);
    const page = await client.jobs({ limit: 100 });
    expect(page.jobs.map((j) => j.id)).toContain(job.id);
    const final = await withDeadline(client.follow(job.id), 20_000, "the job did not end");
    expect(final.status).toBe("completed");
    const completed = await client.jobs({ status: "completed", limit: 100 });
    expect(completed.jobs.map((j) => j.id)).toContain(job.id);
    const types = (await client.events(job.id)).map((e) => e.type);
    expect(types[0]).toBe("submitted");
    expect(types).toContain("execution_finished");
  });

  it("streams job, progress and end as an async iterator that ends with the job", async () => {
    const job = await client.submit({ executions: [chat("demo")] });
    const events: StreamEvent[] = [];
    await withDeadline(
      (async () => {
        for await (const event of client.stream(job.id)) events.push(event);
      })(),
      20_000,
      "the stream did not end",
    );
    expect(events[0]?.event).toBe("job");
    expect(events.map((e) => e.event)).toContain("progress");
    expect(events.at(-1)).toEqual({ event: "end", data: { status: "completed" } });
    expect(api.streams.size()).toBe(0);
  });

  it("ends the stream iterator cleanly on abort and leaves no stream open on the server", async () => {
    const job = await client.submit({ executions: [chat("llm")] });
    const controller = new AbortController();
    const seen: string[] = [];
    await withDeadline(
      (async () => {
        for await (const event of client.stream(job.id, { signal: controller.signal })) {
          seen.push(event.event);
          if (event.event === "progress") controller.abort();
        }
      })(),
      20_000,
      "the aborted stream did not end",
    );
    expect(seen.at(-1)).toBe("progress");
    await withDeadline(
      (async () => {
        while (api.streams.size() > 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      5_000,
      "the server kept the stream open",
    );
    await client.cancel(job.id);
  });

  it("follow reopens a stream the server closed before the end and still returns the final job", async () => {
    const job = await client.submit({ executions: [chat("llm")] });
    let closedOnce = false;
    let cancelling: Promise<unknown> | undefined;
    const seen: string[] = [];
    const following = client.follow(job.id, {
      onEvent: (event) => {
        seen.push(event.event);
        if (event.event === "progress" && !closedOnce) {
          closedOnce = true;
          api.streams.closeAll(); // as an instance does when it drains
        }
        // The reopened stream's snapshot: now end the job.
        if (event.event === "job" && closedOnce && !cancelling) {
          cancelling = client.cancel(job.id);
        }
      },
    });
    const final = await withDeadline(following, 20_000, "follow did not return");
    await cancelling;
    expect(final.status).toBe("cancelled");
    expect(seen.filter((e) => e === "job").length).toBeGreaterThanOrEqual(2);
  });

  it("follow rides out a server that is gone for a while, then returns the final job", async () => {
    const first = await listen(api.app);
    const port = Number(new URL(first.url).port);
    let down = false;
    let failedWhileDown = 0;
    let back: Awaited<ReturnType<typeof listen>> | undefined;
    let reopened: Promise<void> | undefined;
    // The real fetch, watched: once a retry has failed against the closed port, reopen it.
    const watched: typeof fetch = async (input, init) => {
      try {
        return await fetch(input, init);
      } catch (err) {
        if (down && ++failedWhileDown === 1) {
          reopened = listen(api.app, port).then((s) => {
            back = s;
          });
        }
        throw err;
      }
    };
    const outage = createClient({ url: first.url, token: client.token, fetch: watched });
    const job = await outage.submit({ executions: [chat("llm")] });
    let cut = false;
    let cancelling: Promise<unknown> | undefined;
    const following = outage.follow(job.id, {
      onEvent: (event) => {
        if (event.event === "progress" && !cut) {
          cut = true;
          down = true;
          void first.close();
        }
        // The snapshot of the stream reopened on the new server: end the job.
        if (event.event === "job" && back !== undefined && cancelling === undefined) {
          cancelling = client.cancel(job.id);
        }
      },
    });
    try {
      const final = await withDeadline(following, 20_000, "follow gave up");
      expect(final.status).toBe("cancelled");
      expect(failedWhileDown).toBeGreaterThanOrEqual(1);
      await cancelling;
    } finally {
      await reopened;
      await back?.close();
    }
  });

  it("cancels a running job and answers with the time it stopped; a second cancel is not_cancellable", async () => {
    const job = await client.submit({ executions: [chat("llm")] });
    for await (const event of client.stream(job.id)) if (event.event === "progress") break;
    const result = await client.cancel(job.id, { reason: "enough" });
    expect(result).toMatchObject({
      ok: true,
      job_id: job.id,
      previous_status: "running",
      new_status: "cancelled",
      context_cancelled: true,
      executions_cancelled: 1,
    });
    expect(result.stopped_at).not.toBeNull();
    const err = await failure(client.cancel(job.id));
    expect(err).toMatchObject({ code: "not_cancellable", status: 409 });
    expect(err.extra.status).toBe("cancelled");
    const bulk = await client.cancelMany([job.id, crypto.randomUUID()]);
    expect(bulk.cancelled).toBe(0);
    expect(bulk.results.map((r) => r.error?.code)).toEqual(["not_cancellable", "not_found"]);
  });

  it("turns every refusal into a QuenchError with SPEC's code", async () => {
    const missing = await failure(client.job(crypto.randomUUID()));
    expect(missing).toMatchObject({ code: "not_found", status: 404 });

    const anonymous = createClient({ url: server.url, token: "not-a-token" });
    expect(await failure(anonymous.jobs())).toMatchObject({ code: "unauthenticated", status: 401 });

    const stranger = createClient({ url: server.url });
    await signInWithAccount(stranger, newWallet(), { domain: HOST });
    const mine = await client.submit({ executions: [chat("demo")] });
    expect(await failure(stranger.job(mine.id))).toMatchObject({ code: "forbidden", status: 403 });
    expect(await failure(stranger.cancel(mine.id))).toMatchObject({ code: "forbidden" });

    const invalid = await failure(client.submit({ executions: [chat("nowhere")] }));
    expect(invalid.code).toBe("invalid_request");
    expect(invalid.details).toEqual([
      { path: "executions.0.provider", message: "no provider named nowhere is configured" },
    ]);

    const wrongDomain = await failure(
      signInWithAccount(createClient({ url: server.url }), newWallet()),
    );
    expect(wrongDomain.code).toBe("unauthenticated");
  });

  it("reports a server it cannot reach and a call the caller aborted", async () => {
    const closed = await listen({ fetch: () => new Response("") });
    await closed.close();
    const nowhere = createClient({ url: closed.url });
    const err = await failure(nowhere.health());
    expect(err.code).toBe("network_error");
    expect(err.message).toContain("ECONNREFUSED");
    expect(isQuenchError(err, "network_error")).toBe(true);

    const aborted = await failure(client.jobs({}, { signal: AbortSignal.abort() }));
    expect(aborted.code).toBe("aborted");
  });
});
