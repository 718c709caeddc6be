import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import { cancelJob as cancelInStore } from "../../src/db/job-endings.js";
import { claimJobs } from "../../src/db/job-transitions.js";
import { localOnlyBus } from "../../src/runner/bus.js";
import { createCancelService } from "../../src/runner/cancel.js";
import type { FakeServer } from "../fakes/fake-server.js";
import {
  flakyServer,
  openaiStreamServer,
  runpodServer,
  slowJsonServer,
} from "../fakes/providers.js";
import { DRIVERS, type TestDatabase, useTestDatabase } from "../helpers/databases.js";
import { reload } from "../helpers/jobs.js";
import { feedUntil, jobOf, type RunningRunner, startRunner } from "../helpers/runner.js";
import { waitUntil } from "../helpers/wait.js";

describe.each(DRIVERS)("runner on %s", (driver) => {
  let db: Db;
  let t: TestDatabase;
  useTestDatabase(driver, (fresh) => {
    t = fresh;
    db = fresh.database.db;
  });
  const servers: FakeServer[] = [];
  const runners: RunningRunner[] = [];
  async function fake<T extends FakeServer>(s: Promise<T>): Promise<T> {
    const server = await s;
    servers.push(server);
    return server;
  }
  async function runner(providers: Record<string, unknown>, options = {}) {
    const r = await startRunner(db, providers, options);
    runners.push(r);
    return r;
  }
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.stop();
    for (const s of servers.splice(0)) await s.close();
  });

  it("runs a job to completed, recording output and every step in the audit trail", async () => {
    const server = await fake(slowJsonServer(0));
    const r = await runner({ fast: { kind: "http", url: server.url } });
    const { job, ended } = await r.submit(
      jobOf([{ key: "only", provider: "fast", input: { x: 1 } }]),
    );
    expect(await ended).toMatchObject({ status: "completed" });
    const after = await reload(db, job.id);
    expect(after).toMatchObject({ status: "completed", instance: "runner-test", attempt: 1 });
    expect(after.executions[0]).toMatchObject({
      status: "completed",
      output: { echo: { model: "only", input: { x: 1 } } },
    });
    const types = (await listEvents(db, job.id)).map((e) => e.type);
    expect(types).toEqual([
      "submitted",
      "claimed",
      "execution_started",
      "execution_finished",
      "finished",
    ]);
    expect(r.manager.count()).toBe(0);
  });

  it("a cancel closes every provider socket of the job and leaves other jobs' sockets open", async () => {
    const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const r = await runner({ slow: { kind: "http", url: server.url } });
    const a = await r.submit(
      jobOf([
        { key: "a1", provider: "slow" },
        { key: "a2", provider: "slow" },
      ]),
    );
    const b = await r.submit(
      jobOf([
        { key: "b1", provider: "slow" },
        { key: "b2", provider: "slow" },
      ]),
    );
    await server.waitFor(() => server.requests.length === 4, 10_000, "four open requests");

    const result = await r.runner.cancelJob(a.job.id, { actor: "0xOwner", reason: "too slow" });
    expect(result).toMatchObject({
      ok: true,
      previousStatus: "running",
      newStatus: "cancelled",
      contextCancelled: true,
      executionsCancelled: 2,
    });
    if (!result.ok) throw new Error("unreachable");
    expect(result.stoppedAt).toBeInstanceOf(Date);
    expect(await a.ended).toMatchObject({ status: "cancelled" });
    // stoppedAt means our side closed them; the server sees the close a moment later.
    const aRequests = [...server.forModel("a1"), ...server.forModel("a2")];
    expect(aRequests).toHaveLength(2);
    await server.waitFor(
      () => aRequests.every((q) => q.closedAt !== undefined),
      5000,
      "job A's sockets to close",
    );
    for (const req of [...server.forModel("b1"), ...server.forModel("b2")])
      expect(req.closedAt).toBeUndefined();

    const after = await reload(db, a.job.id);
    expect(after).toMatchObject({
      status: "cancelled",
      cancelledBy: "0xOwner",
      cancelReason: "too slow",
    });
    expect(after.stoppedAt?.getTime()).toBe(result.stoppedAt?.getTime());
    const stopped = (await listEvents(db, a.job.id)).find((e) => e.type === "stopped");
    expect(stopped?.data.cancel_to_stop_ms).toBeTypeOf("number");
    expect((await reload(db, b.job.id)).status).toBe("running");
    await r.runner.cancelJob(b.job.id, { actor: "test" });
  });

  it("keeps the text streamed so far when a streaming execution is cancelled", async () => {
    const server = await fake(openaiStreamServer({ tokens: 100_000, intervalMs: 2 }));
    const r = await runner({ llm: { kind: "openai", base_url: server.url } });
    const { job, ended } = await r.submit(jobOf([{ key: "chat", provider: "llm" }]));
    await feedUntil(
      r.feed,
      job.id,
      (e) => e.type === "progress" && (e.output as { text: string }).text.length > 6,
    );
    const result = await r.runner.cancelJob(job.id, { actor: "user" });
    expect(result).toMatchObject({ ok: true, contextCancelled: true });
    await ended;
    const exec = (await reload(db, job.id)).executions[0];
    expect(exec).toMatchObject({
      status: "cancelled",
      partial: true,
      error: { code: "cancelled" },
    });
    expect(exec?.output).toMatchObject({ text: expect.stringMatching(/^t0 t1 t2 /) });
  });

  it("a queued job is cancelled before any work starts", async () => {
    const server = await fake(slowJsonServer(0));
    const r = await runner({ fast: { kind: "http", url: server.url } }, { concurrency: 1 });
    const blocker = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const r2 = await runner(
      { slow: { kind: "http", url: blocker.url } },
      { concurrency: 1, instance: "other" },
    );
    // Both runners are busy or idle; the queued job is cancelled before anyone claims it.
    await r.runner.stop(0);
    await r2.runner.stop(0);
    const { job } = await r.submit(jobOf([{ key: "never", provider: "fast" }]));
    const result = await r.runner.cancelJob(job.id, { actor: "user" });
    expect(result).toMatchObject({
      ok: true,
      previousStatus: "queued",
      contextCancelled: false,
      executionsCancelled: 1,
    });
    if (result.ok) expect(result.stoppedAt).toBeInstanceOf(Date);
    expect(server.requests).toHaveLength(0);
  });

  it("a job past its deadline is timed_out, its running execution aborted and its socket closed", async () => {
    const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const r = await runner({ slow: { kind: "http", url: server.url } });
    const { job, ended } = await r.submit(
      jobOf([{ key: "long", provider: "slow" }], { timeoutMs: 150 }),
    );
    expect(await ended).toMatchObject({ status: "timed_out" });
    const after = await reload(db, job.id);
    expect(after).toMatchObject({ status: "timed_out", error: { code: "timed_out" } });
    expect(after.executions[0]).toMatchObject({
      status: "cancelled",
      error: { code: "timed_out" },
    });
    await server.waitFor(
      () => server.requests[0]?.closedAt !== undefined,
      5000,
      "the socket to close",
    );
  });

  it("a stalled stream fails its execution as stalled, and the job as failed", async () => {
    const server = await fake(openaiStreamServer({ tokens: 100, intervalMs: 1, stallAfter: 2 }));
    const r = await runner({ llm: { kind: "openai", base_url: server.url, stall_ms: 100 } });
    const { job, ended } = await r.submit(jobOf([{ key: "chat", provider: "llm", retries: 2 }]));
    expect(await ended).toMatchObject({ status: "failed" });
    const exec = (await reload(db, job.id)).executions[0];
    expect(exec).toMatchObject({
      status: "failed",
      partial: true,
      output: { text: "t0 t1 " },
      error: { code: "stalled" },
    });
  });

  it("retries a 503 with the audit trail saying so", async () => {
    const server = await fake(flakyServer({ failures: 2, status: 503 }));
    const r = await runner({ flaky: { kind: "http", url: server.url, retry_base_ms: 1 } });
    const { job, ended } = await r.submit(jobOf([{ key: "x", provider: "flaky", retries: 3 }]));
    expect(await ended).toMatchObject({ status: "completed" });
    expect(server.requests).toHaveLength(3);
    const retries = (await listEvents(db, job.id)).filter((e) => e.type === "retry_scheduled");
    expect(retries.map((e) => e.data.attempt)).toEqual([1, 2]);
  });

  it("a failed dependency skips its dependents; independent work still completes (partial)", async () => {
    const ok = await fake(slowJsonServer(0));
    const bad = await fake(flakyServer({ failures: 100, status: 400 }));
    const r = await runner({
      ok: { kind: "http", url: ok.url },
      bad: { kind: "http", url: bad.url },
    });
    const { job, ended } = await r.submit(
      jobOf([
        { key: "a", provider: "bad" },
        { key: "b", provider: "ok", dependsOn: ["a"] },
        { key: "c", provider: "ok", dependsOn: ["b"] },
        { key: "d", provider: "ok" },
      ]),
    );
    expect(await ended).toMatchObject({ status: "partial" });
    const byKey = Object.fromEntries((await reload(db, job.id)).executions.map((e) => [e.key, e]));
    expect(byKey.a).toMatchObject({ status: "failed", error: { code: "provider_rejected" } });
    expect(byKey.b).toMatchObject({
      status: "skipped",
      error: { code: "dependency_failed", message: "dependency a failed" },
    });
    expect(byKey.c).toMatchObject({
      status: "skipped",
      error: { code: "dependency_failed", message: "dependency b skipped" },
    });
    expect(byKey.d).toMatchObject({ status: "completed" });
    expect(ok.forModel("b")).toHaveLength(0);
  });

  it("runs dependencies before dependents and never more than max_parallel at once", async () => {
    let inFlight = 0;
    let peak = 0;
    const order: string[] = [];
    const server = await fake(
      (await import("../fakes/fake-server.js")).startFakeServer((_req, res, recorded) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        order.push(recorded.model ?? "?");
        setTimeout(() => {
          inFlight--;
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
        }, 15);
      }),
    );
    const r = await runner({ p: { kind: "http", url: server.url } });
    const { ended } = await r.submit(
      jobOf(
        [
          { key: "last", provider: "p", dependsOn: ["x", "y", "z"] },
          { key: "x", provider: "p" },
          { key: "y", provider: "p" },
          { key: "z", provider: "p" },
        ],
        { maxParallel: 2 },
      ),
    );
    expect(await ended).toMatchObject({ status: "completed" });
    expect(peak).toBe(2);
    expect(order.at(-1)).toBe("last");
  });

  it("a provider answer with NUL and a lone surrogate is stored (as U+FFFD), not a failed write", async () => {
    const server = await fake(
      (await import("../fakes/fake-server.js")).startFakeServer((_req, res) => {
        res
          .writeHead(200, { "content-type": "application/json" })
          .end('{"text":"a\\u0000b\\ud800c"}');
      }),
    );
    const r = await runner({ odd: { kind: "http", url: server.url } });
    const { job, ended } = await r.submit(jobOf([{ key: "x", provider: "odd" }]));
    expect(await ended).toMatchObject({ status: "completed" });
    expect((await reload(db, job.id)).executions[0]?.output).toEqual({ text: "a\ufffdb\ufffdc" });
  });

  it("a job whose results the database refuses is retried, then failed after MAX_ATTEMPTS, never looping", async () => {
    // A real refusal by the database, as a constraint would give: a trigger on the output.
    await db.execute(sql`create or replace function refuse_poison() returns trigger language plpgsql as $$
      begin raise exception 'poisoned output refused'; end $$`);
    await db.execute(sql`create trigger refuse_poison before update on executions for each row
      when (new.output ? 'poison') execute function refuse_poison()`);
    try {
      const server = await fake(
        (await import("../fakes/fake-server.js")).startFakeServer((_req, res) => {
          res.writeHead(200, { "content-type": "application/json" }).end('{"poison":true}');
        }),
      );
      const r = await runner({ poison: { kind: "http", url: server.url } }, { maxAttempts: 2 });
      const { job, ended } = await r.submit(jobOf([{ key: "x", provider: "poison" }]));
      expect(await ended).toMatchObject({ status: "failed" });
      const after = await reload(db, job.id);
      expect(after).toMatchObject({
        status: "failed",
        attempt: 2,
        error: { code: "runner_error" },
      });
      expect(after.executions[0]?.status).toBe("cancelled");
      expect(server.requests).toHaveLength(2);
      const trail = (await listEvents(db, job.id)).map((e) => e.type);
      expect(trail.filter((t) => t === "requeued")).toHaveLength(1);
      expect(trail.at(-1)).toBe("finished");
    } finally {
      await db.execute(sql`drop trigger refuse_poison on executions`);
      await db.execute(sql`drop function refuse_poison()`);
    }
  });

  it("an execution naming an unconfigured provider fails as unknown_provider", async () => {
    const r = await runner({ demo: { kind: "demo", tokens_per_second: 1000, max_tokens: 3 } });
    const { job, ended } = await r.submit(jobOf([{ key: "x", provider: "gone" }]));
    expect(await ended).toMatchObject({ status: "failed" });
    expect((await reload(db, job.id)).executions[0]).toMatchObject({
      error: { code: "unknown_provider" },
    });
  });

  it("the demo provider streams tokens through the same path and completes", async () => {
    const r = await runner({ demo: { kind: "demo", tokens_per_second: 2000, max_tokens: 20 } });
    const { job, ended } = await r.submit(jobOf([{ key: "demo", provider: "demo" }]));
    expect(await ended).toMatchObject({ status: "completed" });
    const output = (await reload(db, job.id)).executions[0]?.output as {
      text: string;
      usage: { completion_tokens: number };
    };
    expect(output.text.split(" ").filter(Boolean)).toHaveLength(20);
    expect(output.usage.completion_tokens).toBe(20);
  });

  it("a runpod job's remote cancel is sent and recorded in the audit trail", async () => {
    const { server, cancels } = await runpodServer();
    servers.push(server);
    const r = await runner({ rp: { kind: "runpod", base_url: server.url, poll_ms: 10 } });
    const { job, ended } = await r.submit(
      jobOf([{ key: "gen", provider: "rp", input: { prompt: "x" } }]),
    );
    await server.waitFor(
      () => server.requests.some((q) => q.path.startsWith("/status/")),
      10_000,
      "a poll",
    );
    await r.runner.cancelJob(job.id, { actor: "user" });
    await ended;
    // The remote cancel runs on after our side stopped: wait for its audit trail.
    const recorded = async () =>
      (await listEvents(db, job.id)).filter(
        (e) => e.type === "remote_cancel_sent" || e.type === "remote_stop",
      ).length === 2;
    await waitUntil(recorded, 10_000, "the remote cancel and stop recorded", 20);
    expect(cancels).toEqual(["rp-1"]);
    const after = await reload(db, job.id);
    expect(after.executions[0]?.remoteId).toBe("rp-1");
    const sent = (await listEvents(db, job.id)).find((e) => e.type === "remote_cancel_sent");
    expect(sent?.data).toMatchObject({ key: "gen", remote_id: "rp-1", ok: true });
  });

  it("a cancel written by another instance is noticed at the lease renewal and stops the job", async () => {
    const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const r = await runner({ slow: { kind: "http", url: server.url } }, { leaseMs: 1_500 });
    const { job, ended } = await r.submit(jobOf([{ key: "x", provider: "slow" }]));
    await server.waitFor(() => server.requests.length === 1, 10_000, "the request");
    await cancelInStore(db, job.id, { actor: "elsewhere", reason: "from another instance" });
    expect(await ended).toMatchObject({ status: "cancelled" });
    expect((await reload(db, job.id)).stoppedAt).toBeInstanceOf(Date);
    await server.waitFor(
      () => server.requests[0]?.closedAt !== undefined,
      5000,
      "the socket to close",
    );
  });

  it("a cancel for a job held by another instance is handed to the bus and reported unacknowledged", async () => {
    const r = await runner({ demo: { kind: "demo" } }, { cancelAckMs: 100 });
    await r.runner.stop(0); // this instance claims nothing; "elsewhere" holds the job
    const { job } = await r.submit(jobOf([{ key: "x", provider: "demo" }]));
    const [held] = await claimJobs(db, { instance: "elsewhere", limit: 10, leaseMs: 30_000 });
    expect(held?.id).toBe(job.id);
    const result = await r.runner.cancelJob(job.id, { actor: "user" });
    expect(result).toMatchObject({
      ok: true,
      previousStatus: "running",
      contextCancelled: false,
      stoppedAt: null,
    });
    expect(r.published).toEqual([job.id]);
  });

  it("stop() past its grace aborts running jobs with cause shutdown and requeues them", async () => {
    const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const r = await runner({ slow: { kind: "http", url: server.url } });
    const { job } = await r.submit(jobOf([{ key: "x", provider: "slow" }]));
    await server.waitFor(() => server.requests.length === 1, 10_000, "the request");
    await r.runner.stop(50);
    const after = await reload(db, job.id);
    expect(after).toMatchObject({ status: "queued", instance: null });
    expect(after.executions[0]?.status).toBe("pending");
    expect((await listEvents(db, job.id)).at(-1)).toMatchObject({
      type: "requeued",
      data: { cause: "shutdown" },
    });
    await server.waitFor(
      () => server.requests[0]?.closedAt !== undefined,
      5000,
      "the socket to close",
    );
    await cancelInStore(db, job.id, { actor: "cleanup" }); // leave no queued job for the next test
  });

  // Needs a second connection to the same database that can fail on its own: a server.
  it.skipIf(driver !== "postgres")(
    "a cancel whose transition fails leaves nothing running unattended: the aborted job is requeued",
    async () => {
      const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
      const r = await runner({ slow: { kind: "http", url: server.url } });
      const { job } = await r.submit(jobOf([{ key: "x", provider: "slow", model: "unrecorded" }]));
      await server.waitFor(() => server.forModel("unrecorded").length === 1, 10_000, "the request");
      const broken = await t.openAnother();
      await broken.close();
      const cancelOnBrokenStore = createCancelService({
        db: broken.db,
        manager: r.manager,
        bus: localOnlyBus,
        acks: r.acks,
        endings: r.instance.endings,
        ackMs: 1_000,
      });
      await expect(cancelOnBrokenStore(job.id, { actor: "user" })).rejects.toThrow();
      await server.waitFor(
        () => server.forModel("unrecorded")[0]?.closedAt !== undefined,
        5000,
        "the socket to close",
      );
      // Requeued, then claimed again (here, by the same runner): the job goes on, never
      // stranded, and the attempt the unrecorded cancel cut short is not counted.
      await server.waitFor(
        () => server.forModel("unrecorded").length === 2,
        10_000,
        "the job to run again",
      );
      const after = await reload(db, job.id);
      expect(after).toMatchObject({ status: "running", attempt: 1 });
      const trail = (await listEvents(db, job.id)).map((e) => [
        e.type,
        e.data.cause ?? e.data.attempt ?? null,
      ]);
      const requeued = trail.findIndex(([type]) => type === "requeued");
      expect(trail.slice(requeued, requeued + 2)).toEqual([
        ["requeued", "cancel_not_recorded"],
        ["claimed", 1],
      ]);
    },
  );
});
