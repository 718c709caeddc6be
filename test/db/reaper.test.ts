import { eq, sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import { startExecution } from "../../src/db/executions.js";
import { cancelJob as cancelInStore, markStopped } from "../../src/db/job-endings.js";
import { renewLeases } from "../../src/db/job-transitions.js";
import { createOutageMemory, reapExpiredLeases } from "../../src/db/reaper.js";
import { jobs } from "../../src/db/schema.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { claimOnly, INSTANCE, newJob, reload, submit } from "../helpers/jobs.js";

describe.each(DRIVERS)("reaping lapsed leases on %s", (driver) => {
  let db: Db;
  useTestDatabase(driver, (fresh) => {
    db = fresh.database.db;
  });
  afterEach(async () => {
    await db.delete(jobs); // each test claims "the" queued job: start from none
  });

  /** A running job (one execution started) whose runner has gone silent. */
  async function abandoned(attempts = 1) {
    const job = await submit(db, newJob({}, ["a", "b"]));
    await claimOnly(db, job.id);
    await startExecution(db, job.executions[0]?.id ?? "", INSTANCE);
    await db
      .update(jobs)
      .set({ attempt: attempts, leaseExpiresAt: sql`now() - interval '1 second'` })
      .where(eq(jobs.id, job.id));
    return job;
  }

  it("requeues a job whose lease lapsed, its running executions back to pending", async () => {
    const job = await abandoned();
    const reaped = await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 3 });
    expect(reaped).toEqual({ requeued: [job.id], failed: [], stopped: [] });
    const after = await reload(db, job.id);
    expect(after).toMatchObject({ status: "queued", instance: null, attempt: 1 });
    expect(after.executions.map((e) => e.status)).toEqual(["pending", "pending"]);
    expect((await listEvents(db, job.id)).at(-1)).toMatchObject({
      type: "requeued",
      actor: "reaper",
      data: { cause: "runner_lost", lost_instance: INSTANCE },
    });
  });

  it("forgives a lapse inside an outage it saw: requeued without spending the attempt, even at MAX_ATTEMPTS", async () => {
    const job = await abandoned(2);
    const outages = createOutageMemory(60_000);
    outages.failed(); // a reap that could not reach the database: the outage began (no earlier good contact)
    expect(
      await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 2, forgive: outages.spanAt }),
    ).toEqual({ requeued: [job.id], failed: [], stopped: [] });
    expect(await reload(db, job.id)).toMatchObject({ status: "queued", attempt: 1 });
    expect((await listEvents(db, job.id)).at(-1)).toMatchObject({
      type: "requeued",
      data: { cause: "database_outage", attempt: 1 },
    });
  });

  it("outside an outage a lapse still spends the attempt", async () => {
    const outages = createOutageMemory(60_000);
    // A good contact now, and no failure since: nothing to forgive.
    await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 3, forgive: outages.spanAt });
    const job = await abandoned(2);
    expect(
      await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 2, forgive: outages.spanAt }),
    ).toEqual({ requeued: [], failed: [job.id], stopped: [] });
  });

  it("fails it with runner_lost once MAX_ATTEMPTS claims are spent", async () => {
    const job = await abandoned(2);
    expect(await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 2 })).toEqual({
      requeued: [],
      failed: [job.id],
      stopped: [],
    });
    const after = await reload(db, job.id);
    expect(after).toMatchObject({ status: "failed", attempt: 2, error: { code: "runner_lost" } });
    expect(after.executions.map((e) => e.status)).toEqual(["cancelled", "cancelled"]);
  });

  it("leaves a job whose lease is live, or was renewed in time, alone", async () => {
    const job = await submit(db);
    await claimOnly(db, job.id);
    expect(await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 3 })).toEqual({
      requeued: [],
      failed: [],
      stopped: [],
    });
    await db
      .update(jobs)
      .set({ leaseExpiresAt: sql`now() - interval '1 second'` })
      .where(eq(jobs.id, job.id));
    expect(
      await renewLeases(db, { instance: INSTANCE, jobIds: [job.id], leaseMs: 30_000 }),
    ).toEqual({ running: [job.id], stopping: [] });
    expect(await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 3 })).toEqual({
      requeued: [],
      failed: [],
      stopped: [],
    });
    expect((await reload(db, job.id)).status).toBe("running");
  });

  it("two reapers at once reap each job once", async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await abandoned()).id);
    const [a, b] = await Promise.all([
      reapExpiredLeases(db, { actor: "a", maxAttempts: 3 }),
      reapExpiredLeases(db, { actor: "b", maxAttempts: 3 }),
    ]);
    expect([...a.requeued, ...b.requeued].sort()).toEqual([...ids].sort());
  });

  it("records the stop of a cancelled job whose holder died before reporting it, and not while the holder renews", async () => {
    const job = await submit(db, newJob({}, ["a"]));
    await claimOnly(db, job.id);
    await startExecution(db, job.executions[0]?.id ?? "", INSTANCE);
    await cancelInStore(db, job.id, { actor: "0xabc", reason: "stop" });
    // The holder is alive: its renewal keeps the stopping job's lease.
    expect(
      await renewLeases(db, { instance: INSTANCE, jobIds: [job.id], leaseMs: 30_000 }),
    ).toEqual({ running: [], stopping: [job.id] });
    expect((await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 3 })).stopped).toEqual([]);
    expect((await reload(db, job.id)).stoppedAt).toBeNull();

    // Then it dies: the lease lapses with the stop unreported.
    await db
      .update(jobs)
      .set({ leaseExpiresAt: sql`now() - interval '1 second'` })
      .where(eq(jobs.id, job.id));
    expect(await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 3 })).toEqual({
      requeued: [],
      failed: [],
      stopped: [{ jobId: job.id, stoppedAt: expect.any(Date), cancelToStopMs: expect.any(Number) }],
    });
    const after = await reload(db, job.id);
    expect(after).toMatchObject({ status: "cancelled", leaseExpiresAt: null });
    expect(after.stoppedAt).not.toBeNull();
    const stopped = (await listEvents(db, job.id)).filter((e) => e.type === "stopped");
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toMatchObject({
      actor: "reaper",
      data: { runner_lost: true, lost_instance: INSTANCE, cancel_to_stop_ms: expect.any(Number) },
    });
    // Reaped once; a late report from the holder changes nothing.
    expect((await reapExpiredLeases(db, { actor: "reaper", maxAttempts: 3 })).stopped).toEqual([]);
    expect(await markStopped(db, job.id, { actor: INSTANCE })).toBeUndefined();
  });

  it("a reported stop ends the lease: nothing is left for the reaper", async () => {
    const job = await submit(db, newJob({}, ["a"]));
    await claimOnly(db, job.id);
    await cancelInStore(db, job.id, { actor: "0xabc" });
    expect(await markStopped(db, job.id, { actor: INSTANCE })).toBeDefined();
    expect((await reload(db, job.id)).leaseExpiresAt).toBeNull();
    expect(
      await renewLeases(db, { instance: INSTANCE, jobIds: [job.id], leaseMs: 30_000 }),
    ).toEqual({ running: [], stopping: [] });
  });
});
