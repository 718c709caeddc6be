import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import type { Db } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import type { CancelResult } from "../../src/runner/cancel.js";
import { startFakeServer } from "../fakes/fake-server.js";
import { slowJsonServer } from "../fakes/providers.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { reload } from "../helpers/jobs.js";
import { feedUntil, jobOf, startRunner } from "../helpers/runner.js";

const ROUNDS = 60;

/** Counts of the event loop's active handles by type (timers, sockets…). */
function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

describe.each(DRIVERS)("runner races and leaks on %s", (driver) => {
  let db: Db;
  useTestDatabase(driver, (fresh) => {
    db = fresh.database.db;
  });

  it(`a cancel racing the last execution's completion ends in exactly one terminal state, ${ROUNDS} times`, async () => {
    const held = new Map<string, ServerResponse>();
    const server = await startFakeServer((_req, res, recorded) =>
      held.set(recorded.model ?? "", res),
    );
    const r = await startRunner(db, { p: { kind: "http", url: server.url } });
    const tally = { cancelled: 0, completed: 0 };
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const model = `race-${round}`;
        const { job, ended } = await r.submit(jobOf([{ key: "last", provider: "p", model }]));
        await server.waitFor(() => held.has(model), 10_000, "the request");
        const respond = () =>
          held
            .get(model)
            ?.writeHead(200, { "content-type": "application/json" })
            .end('{"done":true}');
        // Three schedules: the cancel issued before the response, right after it, or
        // 0–9 ms after the execution is recorded completed. The delay is not a wait for
        // anything: it sweeps the cancel across the completion path's round trips, so the
        // two meet at every step (both outcomes must occur, see below).
        let result: CancelResult;
        const cancel = () => r.runner.cancelJob(job.id, { actor: "user" });
        if (round % 3 === 0) {
          const cancelling = cancel();
          respond();
          result = await cancelling;
        } else if (round % 3 === 1) {
          respond();
          result = await cancel();
        } else {
          const recorded = feedUntil(
            r.feed,
            job.id,
            (e) => e.type === "execution" && e.status === "completed",
          );
          respond();
          await recorded;
          await new Promise((resolve) => setTimeout(resolve, Math.floor(round / 3) % 10));
          result = await cancel();
        }
        const end = await ended;
        const after = await reload(db, job.id);
        const types = (await listEvents(db, job.id)).map((e) => e.type);
        expect(types.filter((t) => t === "finished" || t === "cancel_requested")).toHaveLength(1);
        if (result.ok) {
          expect(after.status).toBe("cancelled");
          expect(end).toMatchObject({ status: "cancelled" });
          expect(after.stoppedAt).toBeInstanceOf(Date);
          expect(types.filter((t) => t === "stopped")).toHaveLength(1);
          tally.cancelled++;
        } else {
          expect(result).toMatchObject({ code: "not_cancellable", status: "completed" });
          expect(after.status).toBe("completed");
          expect(end).toMatchObject({ status: "completed" });
          tally.completed++;
        }
      }
      expect(tally.cancelled + tally.completed).toBe(ROUNDS);
      console.log(`${driver}: cancel won ${tally.cancelled}, completion won ${tally.completed}`);
      expect(tally.cancelled).toBeGreaterThan(0);
      expect(tally.completed).toBeGreaterThan(0);
      expect(r.manager.count()).toBe(0);
    } finally {
      await r.stop();
      await server.close();
    }
  });

  it("after a few thousand jobs, no listener, timer, socket, context or manager entry is left", async () => {
    const fast = await slowJsonServer(0);
    const slow = await slowJsonServer(Number.POSITIVE_INFINITY);
    const before = resources();
    const r = await startRunner(
      db,
      { fast: { kind: "http", url: fast.url }, slow: { kind: "http", url: slow.url } },
      { concurrency: 32 },
    );
    const total = 2_000;
    const batch = 100;
    for (let start = 0; start < total; start += batch) {
      const submitted = await Promise.all(
        Array.from({ length: batch }, (_, i) => {
          const n = start + i;
          const cancelled = n % 10 === 0;
          return r.submit(
            jobOf([{ key: "x", provider: cancelled ? "slow" : "fast", model: `leak-${n}` }]),
          );
        }),
      );
      await Promise.all(
        submitted.map(async ({ job, ended }, i) => {
          if ((start + i) % 10 === 0) {
            await slow.waitFor(
              () => slow.forModel(`leak-${start + i}`).length === 1,
              20_000,
              "the slow request",
            );
            await r.runner.cancelJob(job.id, { actor: "user" });
          }
          await ended;
        }),
      );
    }
    expect(r.manager.count()).toBe(0);
    expect(r.manager.pendingCount()).toBe(0);
    expect(r.feed.size()).toBe(0);
    expect(r.acks.size()).toBe(0);
    expect(r.runner.liveContexts()).toBe(0);
    expect(r.runner.activeJobs()).toBe(0);
    await r.stop();
    await slow.waitFor(() => slow.openSockets() === 0, 5000, "no socket open on the slow fake");
    await fast.waitFor(() => fast.openSockets() === 0, 5000, "no socket open on the fast fake");
    if (driver === "pglite") {
      // On a server the pool's own sockets and idle timers grow during the run; with the
      // embedded database every handle left would be ours.
      const after = resources();
      expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
      expect(after.TCPSocketWrap ?? 0).toBeLessThanOrEqual(before.TCPSocketWrap ?? 0);
    }
    await fast.close();
    await slow.close();
  }, 120_000);
});
