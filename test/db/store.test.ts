import { eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { Db } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import { finishExecution } from "../../src/db/execution-finishes.js";
import { recordPartialOutput, skipExecution, startExecution } from "../../src/db/executions.js";
import { IdempotencyConflictError } from "../../src/db/idempotency.js";
import { cancelJob, finishJob } from "../../src/db/job-endings.js";
import { claimJobs, requeueJob } from "../../src/db/job-transitions.js";
import { getJob, insertJob, listJobs } from "../../src/db/jobs.js";
import { consumeNonce, createNonce, purgeExpiredNonces } from "../../src/db/nonces.js";
import { executions, idempotencyKeys, jobEvents, jobs } from "../../src/db/schema.js";
import type { ExecutionStatus, JobStatus } from "../../src/vocabulary.js";
import { DRIVERS, type TestDatabase, useTestDatabase } from "../helpers/databases.js";
import { claimOnly, deleteJob, INSTANCE, newJob, reload, submit } from "../helpers/jobs.js";

/** The SQLSTATE of a failed query, whichever driver raised it (drizzle wraps it). */
async function sqlState(query: Promise<unknown>): Promise<string | undefined> {
  try {
    await query;
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string } };
    return e.cause?.code ?? e.code;
  }
  return undefined;
}

describe.each(DRIVERS)("job store on %s", (driver) => {
  let t: TestDatabase;
  let db: Db;
  useTestDatabase(driver, (fresh) => {
    t = fresh;
    db = fresh.database.db;
  });

  describe("insertJob", () => {
    it("inserts a queued job with its executions in order and a submitted event", async () => {
      const { job, created } = await insertJob(
        db,
        newJob({ metadata: { team: "vision" } }, ["first", "second", "third"]),
        { actor: "0xAbC" },
      );
      expect(created).toBe(true);
      expect(job.status).toBe("queued");
      expect(job.createdAt).toBeInstanceOf(Date);
      expect(job.attempt).toBe(0);
      expect(job.metadata).toEqual({ team: "vision" });
      expect(job.executions.map((e) => [e.key, e.position, e.status])).toEqual([
        ["first", 0, "pending"],
        ["second", 1, "pending"],
        ["third", 2, "pending"],
      ]);
      const events = await listEvents(db, job.id);
      expect(events.map((e) => [e.type, e.actor])).toEqual([["submitted", "0xAbC"]]);
      expect(typeof events[0]?.id).toBe("number");
      expect(events[0]?.at).toBeInstanceOf(Date);
    });

    it("inserts nothing when one execution is refused (duplicate key)", async () => {
      const before = await db.select({ n: sql<number>`count(*)::int` }).from(jobs);
      const failed = insertJob(db, newJob({ owner: "service:dupe" }, ["same", "same"]));
      expect(await sqlState(failed)).toBe("23505");
      const after = await db.select({ n: sql<number>`count(*)::int` }).from(jobs);
      expect(after).toEqual(before);
    });

    it("the same Idempotency-Key from the same principal returns the same job", async () => {
      const idempotency = { principal: "service:portal", key: "k-1", requestHash: "h1" };
      const first = await insertJob(db, newJob(), { idempotency });
      const again = await insertJob(db, newJob(), { idempotency });
      expect(again.created).toBe(false);
      expect(again.job.id).toBe(first.job.id);
      const other = await insertJob(db, newJob(), {
        idempotency: { ...idempotency, principal: "service:other" },
      });
      expect(other.created).toBe(true);
      expect(other.job.id).not.toBe(first.job.id);
    });

    it("the same Idempotency-Key with another body is a conflict", async () => {
      const idempotency = { principal: "service:portal", key: "k-2", requestHash: "h1" };
      await insertJob(db, newJob(), { idempotency });
      await expect(
        insertJob(db, newJob(), { idempotency: { ...idempotency, requestHash: "h2" } }),
      ).rejects.toBeInstanceOf(IdempotencyConflictError);
    });

    it("concurrent submits with one Idempotency-Key create one job", async () => {
      const other = driver === "postgres" ? (await t.openAnother()).db : db;
      const idempotency = { principal: "service:race", key: "k-race", requestHash: "h" };
      const results = await Promise.all(
        [db, other, db, other].map((d) =>
          insertJob(d, newJob({ owner: "service:race" }), { idempotency }),
        ),
      );
      expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      const owned = await db.select().from(jobs).where(eq(jobs.owner, "service:race"));
      expect(owned).toHaveLength(1);
    });
  });

  describe("listJobs", () => {
    /**
     * Sets each job's created_at, so the expected order never hangs on the clock: it is
     * kept to the millisecond, and two submits in one millisecond tie (the id decides).
     */
    async function createdAt(times: [string, string][]) {
      for (const [id, at] of times) {
        await db
          .update(jobs)
          .set({ createdAt: sql`${at}::timestamptz` })
          .where(eq(jobs.id, id));
      }
    }

    /** Every page of `owner`'s jobs at `limit` a page, concatenated. */
    async function allPages(owner: string, limit: number): Promise<string[]> {
      const seen: string[] = [];
      let after: Awaited<ReturnType<typeof listJobs>>["nextCursor"] = null;
      for (let page = 0; page < 20; page++) {
        const result = await listJobs(db, { owner, limit, ...(after ? { after } : {}) });
        seen.push(...result.jobs.map((j) => j.id));
        for (const j of result.jobs) expect(j.executions).toHaveLength(1);
        after = result.nextCursor;
        if (after === null) break;
      }
      return seen;
    }

    it("pages through an owner's jobs newest first without gaps or repeats", async () => {
      const owner = "0xPager";
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push((await submit(db, newJob({ owner }))).id);
      await createdAt(ids.map((id, i) => [id, `2026-01-01T00:00:0${i}Z`]));
      await submit(db, newJob({ owner: "0xSomeoneElse" }));
      expect(await allPages(owner, 3)).toEqual([...ids].reverse());
    });

    it("misses and repeats no job when jobs share a millisecond, whatever the page size", async () => {
      const owner = "0xSameMillisecond";
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await submit(db, newJob({ owner }))).id);
      // Newest first: 0 and 1 share a millisecond, 2 to 4 another; 5 is alone.
      const times = ["00.006", "00.006", "00.005", "00.005", "00.005", "00.004"];
      await createdAt(ids.map((id, i) => [id, `2026-01-01T00:00:${times[i]}Z`]));
      const newestFirst = [
        ...ids.slice(0, 2).sort().reverse(),
        ...ids.slice(2, 5).sort().reverse(),
        ids[5],
      ];
      for (const limit of [1, 2, 3, 4]) {
        expect(await allPages(owner, limit), `at ${limit} a page`).toEqual(newestFirst);
      }
    });

    it("filters by status", async () => {
      const owner = "0xFilter";
      const queued = await submit(db, newJob({ owner }));
      const cancelled = await submit(db, newJob({ owner }));
      await cancelJob(db, cancelled.id, { actor: owner });
      const page = await listJobs(db, { owner, status: "cancelled", limit: 10 });
      expect(page.jobs.map((j) => j.id)).toEqual([cancelled.id]);
      expect(page.nextCursor).toBeNull();
      const all = await listJobs(db, { owner, limit: 10 });
      expect(all.jobs.map((j) => j.id)).toEqual([cancelled.id, queued.id]);
    });
  });

  describe("cancelJob", () => {
    it("cancels a queued job before any work starts, and marks it stopped at once", async () => {
      const job = await submit(db, newJob({}, ["a", "b"]));
      const result = await cancelJob(db, job.id, { actor: "0xOwner", reason: "changed my mind" });
      expect(result).toMatchObject({
        outcome: "cancelled",
        previousStatus: "queued",
        executionsCancelled: 2,
      });
      const after = await reload(db, job.id);
      expect(after).toMatchObject({
        status: "cancelled",
        cancelledBy: "0xOwner",
        cancelReason: "changed my mind",
      });
      expect(after.stoppedAt).toEqual(after.cancelledAt);
      expect(after.executions.map((e) => e.status)).toEqual(["cancelled", "cancelled"]);
      const events = await listEvents(db, job.id);
      expect(events.map((e) => e.type)).toEqual(["submitted", "cancel_requested", "stopped"]);
      expect(events[1]).toMatchObject({
        actor: "0xOwner",
        data: { reason: "changed my mind", previous_status: "queued" },
      });
      const claimed = await claimJobs(db, { instance: INSTANCE, limit: 100, leaseMs: 1000 });
      expect(claimed.map((j) => j.id)).not.toContain(job.id);
    });

    it("cancels a running job's pending and running executions, leaves finished ones, awaits stop", async () => {
      const job = await submit(db, newJob({}, ["done", "busy", "waiting"]));
      await claimOnly(db, job.id);
      const [done, busy] = job.executions;
      await startExecution(db, done?.id ?? "", INSTANCE);
      await finishExecution(db, done?.id ?? "", INSTANCE, {
        status: "completed",
        output: { text: "hi" },
      });
      await startExecution(db, busy?.id ?? "", INSTANCE);
      const result = await cancelJob(db, job.id, { actor: "admin" });
      expect(result).toMatchObject({
        outcome: "cancelled",
        previousStatus: "running",
        executionsCancelled: 2,
      });
      const after = await reload(db, job.id);
      expect(after.stoppedAt).toBeNull();
      expect(after.executions.map((e) => e.status)).toEqual([
        "completed",
        "cancelled",
        "cancelled",
      ]);
      expect(await recordPartialOutput(db, busy?.id ?? "", { text: "half a sen" })).toBe(true);
      expect(await recordPartialOutput(db, busy?.id ?? "", { text: "overwritten" })).toBe(false);
      const busyAfter = (await reload(db, job.id)).executions[1];
      expect(busyAfter).toMatchObject({
        status: "cancelled",
        partial: true,
        output: { text: "half a sen" },
      });
    });

    it("reports an unknown job and a terminal one with its status", async () => {
      expect(await cancelJob(db, "00000000-0000-4000-8000-000000000000", { actor: "x" })).toEqual({
        outcome: "not_found",
      });
      const job = await submit(db);
      await cancelJob(db, job.id, { actor: "x" });
      expect(await cancelJob(db, job.id, { actor: "y" })).toEqual({
        outcome: "not_cancellable",
        status: "cancelled",
      });
      expect((await reload(db, job.id)).cancelledBy).toBe("x");
    });
  });

  describe("finishJob", () => {
    const cases: [string, ExecutionStatus[], JobStatus][] = [
      ["every execution completed", ["completed", "completed"], "completed"],
      ["one completed and one failed", ["completed", "failed"], "partial"],
      ["one completed and one skipped", ["completed", "skipped"], "partial"],
      ["none completed", ["failed", "skipped"], "failed"],
    ];
    it.each(cases)("%s → %s", async (_name, outcomes, expected) => {
      const job = await submit(
        db,
        newJob(
          {},
          outcomes.map((_, i) => `e${i}`),
        ),
      );
      await claimOnly(db, job.id);
      for (const [i, outcome] of outcomes.entries()) {
        const id = job.executions[i]?.id ?? "";
        if (outcome === "skipped") {
          await skipExecution(db, id, INSTANCE, {
            code: "dependency_failed",
            message: "e0 failed",
          });
          continue;
        }
        await startExecution(db, id, INSTANCE);
        await finishExecution(
          db,
          id,
          INSTANCE,
          outcome === "completed"
            ? { status: "completed", output: 1 }
            : { status: "failed", error: { code: "provider_error", message: "500" } },
        );
      }
      expect(await finishJob(db, job.id, INSTANCE)).toEqual({ ok: true, status: expected });
      const after = await reload(db, job.id);
      expect(after.status).toBe(expected);
      expect(after.finishedAt).toBeInstanceOf(Date);
      expect(after.error?.code ?? null).toBe(expected === "failed" ? "executions_failed" : null);
    });

    it("refuses while an execution is still running", async () => {
      const job = await submit(db);
      await claimOnly(db, job.id);
      await startExecution(db, job.executions[0]?.id ?? "", INSTANCE);
      expect(await finishJob(db, job.id, INSTANCE)).toEqual({
        ok: false,
        reason: "executions_active",
      });
      expect((await reload(db, job.id)).status).toBe("running");
    });
  });

  describe("claim and requeue", () => {
    it("claim sets the instance, start, deadline from timeout_ms, lease and attempt", async () => {
      const job = await submit(db, newJob({ timeoutMs: 90_000 }));
      const claimed = await claimOnly(db, job.id);
      expect(claimed).toMatchObject({ status: "running", instance: INSTANCE, attempt: 1 });
      const started = claimed.startedAt?.getTime() ?? 0;
      expect(claimed.deadlineAt?.getTime()).toBe(started + 90_000);
      expect(claimed.leaseExpiresAt?.getTime()).toBe(started + 30_000);
    });

    it("a requeued job keeps its completed executions, is claimable again, and the old holder can no longer write", async () => {
      const job = await submit(db, newJob({}, ["kept", "redo"]));
      await claimOnly(db, job.id);
      const [kept, redo] = job.executions;
      await startExecution(db, kept?.id ?? "", INSTANCE);
      await finishExecution(db, kept?.id ?? "", INSTANCE, { status: "completed", output: "k" });
      await startExecution(db, redo?.id ?? "", INSTANCE);
      expect(
        await requeueJob(db, job.id, { instance: "not-the-holder", cause: "runner_lost" }),
      ).toBe(false);
      expect(await requeueJob(db, job.id, { instance: INSTANCE, cause: "runner_lost" })).toBe(true);
      const queued = await reload(db, job.id);
      expect(queued).toMatchObject({ status: "queued", instance: null, attempt: 1 });
      expect(queued.executions.map((e) => e.status)).toEqual(["completed", "pending"]);
      const [again] = await claimJobs(db, { instance: "other", limit: 100, leaseMs: 1000 });
      expect(again).toMatchObject({ id: job.id, instance: "other", attempt: 2 });
      expect(await startExecution(db, redo?.id ?? "", INSTANCE)).toBeUndefined();
      expect(await startExecution(db, redo?.id ?? "", "other")).toBeDefined();
      // A start and a finish write their events with them; the refused start wrote none.
      const events = (await listEvents(db, job.id)).map(
        (e) => `${e.type}${e.data.key === undefined ? "" : ` ${e.data.key}`}`,
      );
      expect(events).toEqual([
        "submitted",
        "claimed",
        "execution_started kept",
        "execution_finished kept",
        "execution_started redo",
        "requeued",
        "claimed",
        "execution_started redo",
      ]);
    });
  });

  describe("constraints", () => {
    it("CHECK constraints refuse a status outside SPEC's lists", async () => {
      const job = await submit(db);
      expect(
        await sqlState(
          db
            .update(jobs)
            .set({ status: "paused" as JobStatus })
            .where(eq(jobs.id, job.id)),
        ),
      ).toBe("23514");
      expect(
        await sqlState(
          db
            .update(executions)
            .set({ status: "sleeping" as ExecutionStatus })
            .where(eq(executions.jobId, job.id)),
        ),
      ).toBe("23514");
      expect((await reload(db, job.id)).status).toBe("queued");
    });

    it("deleting a job deletes its executions, events and idempotency keys", async () => {
      const { job } = await insertJob(db, newJob(), {
        idempotency: { principal: "service:gone", key: "k", requestHash: "h" },
      });
      await deleteJob(db, job.id);
      expect(await getJob(db, job.id)).toBeUndefined();
      expect(await db.select().from(executions).where(eq(executions.jobId, job.id))).toEqual([]);
      expect(await db.select().from(jobEvents).where(eq(jobEvents.jobId, job.id))).toEqual([]);
      expect(
        await db.select().from(idempotencyKeys).where(eq(idempotencyKeys.jobId, job.id)),
      ).toEqual([]);
    });
  });

  describe("SIWE nonces", () => {
    it("a nonce is consumed once: a replay finds it gone", async () => {
      const { nonce, expiresAt } = await createNonce(db, 600_000);
      expect(nonce).toMatch(/^[a-zA-Z0-9]{8,}$/);
      expect(expiresAt.getTime()).toBeGreaterThan(Date.now());
      expect(await consumeNonce(db, nonce)).toBe("ok");
      expect(await consumeNonce(db, nonce)).toBe("unknown");
    });

    it("an expired nonce is refused as expired and purged", async () => {
      const { nonce } = await createNonce(db, -1);
      const { nonce: purged } = await createNonce(db, -1);
      expect(await consumeNonce(db, nonce)).toBe("expired");
      expect(await purgeExpiredNonces(db)).toBeGreaterThanOrEqual(1);
      expect(await consumeNonce(db, purged)).toBe("unknown");
    });

    it("of concurrent sign-ins with one nonce exactly one succeeds", async () => {
      const other = driver === "postgres" ? (await t.openAnother()).db : db;
      const { nonce } = await createNonce(db, 600_000);
      const outcomes = await Promise.all([db, other, db, other].map((d) => consumeNonce(d, nonce)));
      expect(outcomes.filter((o) => o === "ok")).toHaveLength(1);
    });
  });
});
