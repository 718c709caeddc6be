import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import { finishExecution } from "../../src/db/execution-finishes.js";
import { startExecution } from "../../src/db/executions.js";
import {
  type CancelOutcome,
  cancelJob,
  type FinishOutcome,
  finishJob,
  timeOutJob,
} from "../../src/db/job-endings.js";
import { claimJobs } from "../../src/db/job-transitions.js";
import { insertJob } from "../../src/db/jobs.js";
import { webhookEvents } from "../../src/db/schema.js";
import { recordAttempts } from "../../src/db/webhook-attempts.js";
import { claimDeliveries, enqueueJobEvent } from "../../src/db/webhook-outbox.js";
import { deleteWebhook, insertWebhook } from "../../src/db/webhooks.js";
import { createMetrics } from "../../src/metrics.js";
import { TERMINAL_JOB_STATUSES } from "../../src/vocabulary.js";
import { createWebhookLoop } from "../../src/webhooks/loop.js";
import { webhookReceiver } from "../fakes/webhook-receiver.js";
import { DRIVERS, useRaceSides } from "../helpers/databases.js";
import { claimOnly, INSTANCE, newJob, reload, submit } from "../helpers/jobs.js";
import { testLogger } from "../helpers/logs.js";

const ROUNDS = 60;

describe.each(DRIVERS)("races on %s", (driver) => {
  /** Two sides of a race: separate connection pools on a server, the one PGlite otherwise. */
  let left: Database;
  let right: Database;
  let another: () => Promise<Database>;
  useRaceSides(driver, (sides) => {
    ({ left, right, another } = sides);
  });

  async function runningJob() {
    const job = await submit(left.db);
    await claimOnly(left.db, job.id);
    const exec = job.executions[0];
    if (exec === undefined) throw new Error("no execution");
    expect(await startExecution(left.db, exec.id, INSTANCE)).toBeDefined();
    return { job, exec };
  }

  it(`cancel racing completion ends in exactly one terminal state and one terminal webhook, ${ROUNDS} times in both orders`, async () => {
    const receiver = await webhookReceiver();
    await insertWebhook(left.db, {
      owner: null,
      createdBy: "service:ops",
      url: receiver.url,
      events: ["job.completed", "job.cancelled"],
      secret: `whsec_${Buffer.alloc(24, 7).toString("base64")}`,
    });
    const tally = { cancelled: 0, completed: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const { job, exec } = await runningJob();
      const cancel = () => cancelJob(right.db, job.id, { actor: "user", reason: "race" });
      const finishExec = () =>
        finishExecution(left.db, exec.id, INSTANCE, { status: "completed", output: "x" });
      const finish = () => finishJob(left.db, job.id, INSTANCE);
      const complete = async () => {
        await finishExec();
        return finish();
      };
      // Four schedules: each side issued first, meeting at the execution's
      // update or at the job's; in the last, the finish is answered before the
      // cancel is sent (on PGlite, one connection, a cancel's transaction
      // otherwise takes the connection before the finish's single statement).
      let cancelled: CancelOutcome;
      let finished: FinishOutcome;
      switch (round % 4) {
        case 0:
          [cancelled, finished] = await Promise.all([cancel(), complete()]);
          break;
        case 1:
          [finished, cancelled] = await Promise.all([complete(), cancel()]);
          break;
        case 2:
          await finishExec();
          [cancelled, finished] = await Promise.all([cancel(), finish()]);
          break;
        default:
          await finishExec();
          finished = await finish();
          cancelled = await cancel();
      }

      const after = await reload(left.db, job.id);
      const events = (await listEvents(left.db, job.id)).map((e) => e.type);
      const terminalEvents = events.filter((e) => e === "cancel_requested" || e === "finished");
      expect(terminalEvents).toHaveLength(1);
      expect([cancelled.outcome === "cancelled", finished.ok]).toContain(true);
      expect(cancelled.outcome === "cancelled").not.toBe(finished.ok);
      if (finished.ok) {
        expect(after.status).toBe("completed");
        expect(cancelled).toEqual({ outcome: "not_cancellable", status: "completed" });
        tally.completed++;
      } else {
        expect(after.status).toBe("cancelled");
        expect(finished).toEqual({ ok: false, reason: "not_running", status: "cancelled" });
        tally.cancelled++;
      }
      expect(TERMINAL_JOB_STATUSES).toContain(after.status);
      expect(after.executions.map((e) => e.status)).toEqual([
        finished.ok ? "completed" : after.executions[0]?.status,
      ]);
      expect(["completed", "cancelled"]).toContain(after.executions[0]?.status);
      // The outbox holds exactly the ending that won, written with it.
      const outbox = await left.db
        .select({ type: webhookEvents.type })
        .from(webhookEvents)
        .where(eq(webhookEvents.jobId, job.id));
      expect(outbox.map((e) => e.type)).toEqual([`job.${after.status}`]);
    }
    // Delivered: one terminal webhook per job, whichever ending won.
    const loop = createWebhookLoop({
      db: left.db,
      logger: testLogger(`races-${driver}`),
      metrics: createMetrics({ runningJobs: () => 0, defaults: false }),
      config: { retryBaseMs: 50, allowHttp: true, allowPrivate: true },
      renderJob: async (id) => ({ id }),
    });
    loop.start();
    try {
      await receiver.until(() => receiver.received.length >= ROUNDS, 20_000, "every delivery");
    } finally {
      await loop.stop();
      await receiver.close();
    }
    const perJob = new Map<string, string[]>();
    for (const r of receiver.received) {
      const body = JSON.parse(r.body) as { type: string; data: { id: string } };
      perJob.set(body.data.id, [...(perJob.get(body.data.id) ?? []), body.type]);
    }
    expect(perJob.size).toBe(ROUNDS);
    expect([...perJob.values()].every((types) => types.length === 1)).toBe(true);
    expect(tally.cancelled + tally.completed).toBe(ROUNDS);
    // Both outcomes happen: the schedules really race.
    expect(tally.cancelled).toBeGreaterThan(0);
    expect(tally.completed).toBeGreaterThan(0);
    console.log(`${driver}: cancel won ${tally.cancelled}, completion won ${tally.completed}`);
  });

  it("cancel racing the deadline ends in exactly one of cancelled or timed_out", async () => {
    for (let round = 0; round < ROUNDS / 2; round++) {
      const { job } = await runningJob();
      const cancel = cancelJob(right.db, job.id, { actor: "user" });
      const timeout = timeOutJob(left.db, job.id, INSTANCE);
      const [c, timedOut] = await Promise.all([cancel, timeout]);
      expect(c.outcome === "cancelled").not.toBe(timedOut);
      const after = await reload(left.db, job.id);
      expect(after.status).toBe(timedOut ? "timed_out" : "cancelled");
      expect(after.executions.map((e) => e.status)).toEqual(["cancelled"]);
    }
  });

  it(`deleting a webhook while its attempts are recorded never deadlocks (no 503), ${ROUNDS / 2} times in both orders`, async () => {
    // Running, not queued: the claimers' test below counts every queued job as its own.
    const { job } = await runningJob();
    for (let round = 0; round < ROUNDS / 2; round++) {
      const hook = await insertWebhook(left.db, {
        owner: null,
        createdBy: "service:ops",
        url: "http://127.0.0.1:9/",
        events: ["job.completed"],
        secret: `whsec_${Buffer.alloc(24, 7).toString("base64")}`,
      });
      for (let i = 0; i < 10; i++) {
        await enqueueJobEvent(left.db, { jobId: job.id, owner: job.owner, type: "job.completed" });
      }
      const claimed = await claimDeliveries(left.db, {
        limit: 10,
        holdMs: 30_000,
        perWebhook: 10,
        busy: new Map(),
      });
      expect(claimed).toHaveLength(10);
      const record = () =>
        recordAttempts(
          left.db,
          claimed.map((delivery) => ({
            delivery,
            result: { outcome: "delivered" as const, statusCode: 200 },
          })),
        );
      const remove = () => deleteWebhook(right.db, hook.id);
      const [recorded, deleted] =
        round % 2 === 0
          ? await Promise.all([record(), remove()])
          : await Promise.all([remove(), record()]).then(([d, r]) => [r, d] as const);
      expect(deleted).toBe(true);
      // Recorded before the delete (all 10) or after it (none: the events went with it).
      expect([0, 10]).toContain(recorded.length);
      expect(
        await left.db.select().from(webhookEvents).where(eq(webhookEvents.webhookId, hook.id)),
      ).toEqual([]);
    }
  });

  it("concurrent claimers never get the same job, and together claim every job", async () => {
    const total = 240;
    const submitted = new Set<string>();
    for (let i = 0; i < total; i++) submitted.add((await insertJob(left.db, newJob())).job.id);
    const pools: Database[] =
      driver === "postgres"
        ? [left, right, await another(), await another()]
        : [left, left, left, left];
    // Connect every pool first, so that all claimers start together and none
    // drains the queue while the others are still connecting.
    await Promise.all(pools.map((pool) => pool.ping()));
    const claimedBy = new Map<string, number>();
    const duplicates: string[] = [];
    await Promise.all(
      pools.map(async (pool, claimer) => {
        for (let loops = 0; loops < total; loops++) {
          const batch = await claimJobs(pool.db, {
            instance: `claimer-${claimer}`,
            limit: 7,
            leaseMs: 30_000,
          });
          if (batch.length === 0) return;
          for (const job of batch) {
            if (claimedBy.has(job.id)) duplicates.push(job.id);
            claimedBy.set(job.id, claimer);
            expect(job.instance).toBe(`claimer-${claimer}`);
            expect(job.executions).toHaveLength(1);
          }
        }
      }),
    );
    expect(duplicates).toEqual([]);
    expect(new Set(claimedBy.keys())).toEqual(submitted);
    if (driver === "postgres") {
      // With real connections the work is shared out, not taken by one claimer.
      expect(new Set(claimedBy.values()).size).toBeGreaterThan(1);
    }
  });
});
