import { eq, inArray, sql } from "drizzle-orm";
import { beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import { cancelJob, type FinishOutcome } from "../../src/db/job-endings.js";
import { type ClaimedJob, claimJobs } from "../../src/db/job-transitions.js";
import type { JobWithExecutions } from "../../src/db/jobs.js";
import { reapExpiredLeases } from "../../src/db/reaper.js";
import { jobs, webhookEvents, webhooks } from "../../src/db/schema.js";
import { insertWebhook } from "../../src/db/webhooks.js";
import { type ClaimedAlong, createWriteBatches } from "../../src/runner/write-batches.js";
import { startFakeServer } from "../fakes/fake-server.js";
import { DRIVERS, useRaceSides } from "../helpers/databases.js";
import { newJob, reload, submit } from "../helpers/jobs.js";
import { startRunner } from "../helpers/runner.js";
import { waitUntil } from "../helpers/wait.js";

const JOBS = 48;

/**
 * The runner's grouped writes (src/runner/write-batches.ts) under races:
 * every batch is one statement over many jobs, and each row must still keep
 * its own guard, so a cancel, a lost lease or a dead runner changes exactly
 * the jobs it would have changed one at a time.
 */
describe.each(DRIVERS)("batched writes under races on %s", (driver) => {
  /** Two sides of a race: separate connection pools on a server, the one PGlite otherwise. */
  let left: Database;
  let right: Database;
  useRaceSides(driver, (sides) => {
    ({ left, right } = sides);
  });
  // Each test counts every job and webhook in the database as its own.
  beforeEach(async () => {
    await left.db.delete(webhooks);
    await left.db.delete(jobs);
  });

  async function claimed(
    count: number,
    instance: string,
    leaseMs = 30_000,
    provider = "demo",
    startExecutions = false,
  ) {
    for (let i = 0; i < count; i++) {
      await submit(
        left.db,
        newJob({ executions: [{ key: "a", provider, model: `m${i}`, input: {} }] }),
      );
    }
    const held = await claimJobs(left.db, { instance, limit: count, leaseMs, startExecutions });
    expect(held).toHaveLength(count);
    return held;
  }

  const execOf = (job: JobWithExecutions) => {
    const exec = job.executions[0];
    if (exec === undefined) throw new Error("a job without its execution");
    return exec;
  };

  /**
   * A job's finish either follows its last execution's (two batches) or goes
   * with it (one statement, `lastOf`): the same outcome either way.
   */
  const finishWays = ["after its last execution", "with its last execution"] as const;
  async function finishBoth(
    writes: ReturnType<typeof createWriteBatches>,
    job: JobWithExecutions,
    output: string,
    way: (typeof finishWays)[number],
  ) {
    const exec = execOf(job);
    const result = { status: "completed" as const, output };
    if (way === "after its last execution") {
      const { row } = await writes.finishExecution(exec.id, result);
      return { row, finish: await writes.finishJob(job.id) };
    }
    const { row, job: finish } = await writes.finishExecution(exec.id, result, job.id);
    if (finish === undefined) throw new Error("a last execution's finish answered no job outcome");
    return { row, finish };
  }

  it.each(finishWays)(
    "cancels during batched finishes (the job's finish %s): each job ends once, by whichever committed first",
    async (way) => {
      await insertWebhook(left.db, {
        owner: null,
        createdBy: "service:ops",
        url: "https://example.com/hook",
        events: ["job.completed", "job.cancelled"],
        secret: `whsec_${Buffer.alloc(24, 3).toString("base64")}`,
      });
      const writes = createWriteBatches(left.db, "runner-a");
      const held = await claimed(JOBS, "runner-a");
      // Every sixth job is cancelled before its writes are queued: the batches
      // that carry it must refuse its rows and still write the others'.
      const first = held.filter((_, i) => i % 6 === 0);
      for (const job of first)
        await cancelJob(right.db, job.id, { actor: "user", reason: "early" });
      const finishes: Promise<FinishOutcome>[] = [];
      const cancels: Promise<unknown>[] = [];
      for (const [i, job] of held.entries()) {
        const exec = execOf(job);
        finishes.push(
          (async () => {
            await writes.startExecution(exec.id);
            return (await finishBoth(writes, job, `out ${i}`, way)).finish;
          })(),
        );
        // The other even jobs are cancelled as their writes are queued: whichever commits first wins.
        if (i % 2 === 0 && i % 6 !== 0) {
          const cancel = () => cancelJob(right.db, job.id, { actor: "user", reason: "race" });
          cancels.push(i % 4 === 0 ? cancel() : Promise.resolve().then(cancel));
        }
      }
      const outcomes = await Promise.all(finishes);
      await Promise.all(cancels);

      let cancelled = 0;
      for (const [i, job] of held.entries()) {
        const after = await reload(left.db, job.id);
        const events = (await listEvents(left.db, job.id)).map((e) => e.type);
        const outbox = await left.db
          .select({ type: webhookEvents.type })
          .from(webhookEvents)
          .where(eq(webhookEvents.jobId, job.id));
        const ends = events.filter((e) => e === "finished" || e === "cancel_requested");
        expect(ends, `job ${i}`).toHaveLength(1);
        expect(outbox.map((o) => o.type)).toEqual([`job.${after.status}`]);
        if (after.status === "cancelled") {
          cancelled++;
          expect(i % 2).toBe(0);
          expect(outcomes[i]).toEqual({ ok: false, reason: "not_running", status: "cancelled" });
          expect(["cancelled", "completed"]).toContain(after.executions[0]?.status);
        } else {
          expect(after.status).toBe("completed");
          expect(outcomes[i]).toEqual({ ok: true, status: "completed" });
          expect(after.executions[0]).toMatchObject({ status: "completed", output: `out ${i}` });
        }
      }
      expect(cancelled).toBeGreaterThanOrEqual(first.length);
      expect(cancelled).toBeLessThanOrEqual(JOBS / 2);
      for (const job of first) expect((await reload(left.db, job.id)).status).toBe("cancelled");
    },
  );

  it.each(finishWays)(
    "a lease that lapses while a batch is pending (the job's finish %s): the old holder's writes change nothing once the job moved on",
    async (way) => {
      const writes = createWriteBatches(left.db, "runner-old");
      const held = await claimed(JOBS, "runner-old", 60_000);
      for (const job of held) await writes.startExecution(execOf(job).id);
      // The leases lapse and are reaped while the old holder's finishes are queued.
      await left.db.update(jobs).set({ leaseExpiresAt: sql`now() - interval '1 second'` });
      const pending = held.map((job) => finishBoth(writes, job, "late", way));
      const reaped = await reapExpiredLeases(right.db, { actor: "reaper", maxAttempts: 3 });
      const late = await Promise.all(pending);
      const again = await claimJobs(right.db, {
        instance: "runner-new",
        limit: JOBS,
        leaseMs: 30_000,
      });

      const requeued = new Set(reaped.requeued);
      for (const [i, job] of held.entries()) {
        const after = await reload(left.db, job.id);
        const types = (await listEvents(left.db, job.id)).map((e) => e.type);
        if (requeued.has(job.id)) {
          // The reaper won: the old holder finished nothing after it, and the job runs again.
          expect(late[i]?.finish.ok, `job ${i}`).toBe(false);
          expect(after).toMatchObject({ status: "running", instance: "runner-new", attempt: 2 });
          expect(types).not.toContain("finished");
          // A finish that committed before the requeue is kept (completed work is never redone).
          const kept = late[i]?.row !== undefined;
          expect(after.executions[0]?.status).toBe(kept ? "completed" : "pending");
        } else {
          // The old holder's batch committed first: the job is done, and the reaper left it alone.
          expect(after.status).toBe("completed");
          expect(late[i]?.finish).toEqual({ ok: true, status: "completed" });
          expect(types).not.toContain("requeued");
        }
      }
      expect(again.map((j) => j.id).sort()).toEqual([...requeued].sort());
      console.log(`${driver}: reaper first for ${requeued.size} of ${JOBS} jobs`);
    },
  );

  /**
   * Write batches whose claim-along port gives one claim (the runner's one in
   * flight) to the first batch only, and records the answer.
   */
  function writesClaimingOnce(instance: string, limit: number, leaseMs: number) {
    const answers: (ClaimedAlong | undefined)[] = [];
    let taken = false;
    const writes = createWriteBatches(left.db, instance, {
      take: () => {
        if (taken) return undefined;
        taken = true;
        return { instance, limit, leaseMs, startExecutions: true };
      },
      done: async (answer) => {
        answers.push(answer);
      },
    });
    return { writes, answers };
  }

  /** `count` more queued jobs of one execution on `provider`; their ids. */
  async function queue(count: number, provider: string, tag: string) {
    const ids = new Set<string>();
    for (let i = 0; i < count; i++) {
      const job = await submit(
        left.db,
        newJob({ executions: [{ key: "a", provider, model: `${tag}${i}`, input: {} }] }),
      );
      ids.add(job.id);
    }
    return ids;
  }

  it("a claim riding on batched finishes while cancels race them: it fills the slots the jobs it finished free, no more, and every job ends once", async () => {
    const held = await claimed(JOBS, "runner-a", 30_000, "demo", true);
    // More queued jobs than the claim may take, so its count is its limit's.
    const queued = await queue(JOBS + 8, "demo", "q");
    const { writes, answers } = writesClaimingOnce("runner-a", 2, 30_000);
    // Every ninth job is cancelled before the batch: its slot stays held (its run is still stopping).
    const early = held.filter((_, i) => i % 9 === 0);
    for (const job of early) await cancelJob(right.db, job.id, { actor: "user", reason: "early" });
    const finishes = held.map((job, i) =>
      writes.finishExecution(execOf(job).id, { status: "completed", output: `out ${i}` }, job.id),
    );
    // Every other third job's cancel races the batch: whichever commits first wins.
    const cancels = held
      .filter((_, i) => i % 3 === 0 && i % 9 !== 0)
      .map((job) => cancelJob(right.db, job.id, { actor: "user", reason: "race" }));
    const outcomes = await Promise.all(finishes);
    await Promise.all(cancels);

    expect(answers).toHaveLength(1);
    const answer = answers[0];
    if (answer === undefined) throw new Error("the claim along failed");
    const finished = held.filter((_, i) => outcomes[i]?.job?.ok === true).map((j) => j.id);
    expect([...answer.released].sort()).toEqual(finished.sort());
    expect(answer.limit).toBe(2 + finished.length);
    expect(answer.jobs).toHaveLength(answer.limit);
    for (const job of answer.jobs) {
      expect(queued.has(job.id)).toBe(true);
      expect(job.started).toEqual(new Set([execOf(job).id]));
      const after = await reload(left.db, job.id);
      expect(after).toMatchObject({ status: "running", instance: "runner-a", attempt: 1 });
      expect(after.executions[0]?.status).toBe("running");
      const types = (await listEvents(left.db, job.id)).map((e) => e.type);
      expect(types).toEqual(["submitted", "claimed", "execution_started"]);
    }
    let cancelled = 0;
    for (const [i, job] of held.entries()) {
      const after = await reload(left.db, job.id);
      const types = (await listEvents(left.db, job.id)).map((e) => e.type);
      expect(
        types.filter((e) => e === "finished" || e === "cancel_requested"),
        `job ${i}`,
      ).toHaveLength(1);
      if (after.status === "cancelled") cancelled++;
      else expect(after.status).toBe("completed");
    }
    expect(cancelled).toBe(held.length - finished.length);
    expect(cancelled).toBeGreaterThanOrEqual(early.length);
    console.log(`${driver}: ${cancelled - early.length} of ${cancels.length} racing cancels first`);
    // What runner-a holds in the store: the jobs it claimed, and the cancelled ones it has
    // not reported stopped: as many as before the batch, less the slots it gave up (none).
    const [{ n } = { n: -1 }] = await left.db
      .select({ n: sql<number>`count(*)::int` })
      .from(jobs)
      .where(
        sql`${jobs.instance} = 'runner-a' and (${jobs.status} = 'running' or (${jobs.status} = 'cancelled' and ${jobs.stoppedAt} is null))`,
      );
    expect(n).toBe(answer.jobs.length + cancelled);
    expect(n).toBe(2 + held.length);
  });

  const claimWays = ["its own claim", "a claim along with finishes"] as const;
  it.each(claimWays)(
    "a runner that dies between %s and its first write: the jobs are reaped and run once elsewhere",
    async (way) => {
      // The runner's claims start each job's first execution too.
      let lost: ClaimedJob[] = [];
      if (way === "its own claim") lost = await claimed(12, "runner-dead", 200, "gpu", true);
      else {
        const [done] = await claimed(1, "runner-dead", 200, "gpu", true);
        if (done === undefined) throw new Error("no job claimed");
        await queue(12, "gpu", "n");
        const { writes, answers } = writesClaimingOnce("runner-dead", 11, 200);
        const { job } = await writes.finishExecution(
          execOf(done).id,
          { status: "completed", output: "x" },
          done.id,
        );
        expect(job).toEqual({ ok: true, status: "completed" });
        lost = answers[0]?.jobs ?? [];
        expect(lost).toHaveLength(12);
      }
      for (const job of lost) {
        expect(job.started).toEqual(new Set([execOf(job).id]));
        expect(execOf(job).status).toBe("running");
        expect((await reload(left.db, job.id)).executions[0]?.status).toBe("running");
      }
      // runner-dead never writes again. A live runner on the same database picks the jobs up
      // once the reaper requeues them, and completes each on its second attempt.
      const calls: string[] = [];
      const gpu = await startFakeServer((_req, res, recorded) => {
        calls.push(recorded.model ?? "");
        res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      });
      const r = await startRunner(
        left.db,
        { gpu: { kind: "http", url: gpu.url } },
        { leaseMs: 600, instance: "runner-live" },
      );
      try {
        await waitUntil(
          async () => {
            const rows = await left.db
              .select({ status: jobs.status })
              .from(jobs)
              .where(
                inArray(
                  jobs.id,
                  lost.map((j) => j.id),
                ),
              );
            return rows.every((row) => row.status === "completed");
          },
          20_000,
          "every lost job completed elsewhere",
        );
        for (const job of lost) {
          const after = await reload(left.db, job.id);
          expect(after).toMatchObject({ status: "completed", instance: "runner-live", attempt: 2 });
          const types = (await listEvents(left.db, job.id)).map((e) => e.type);
          // Each claim started the execution: its trail says so after each claim, in order.
          expect(types.slice(0, 3)).toEqual(["submitted", "claimed", "execution_started"]);
          expect(types.filter((e) => e === "claimed")).toHaveLength(2);
          expect(types.filter((e) => e === "execution_started")).toHaveLength(2);
          expect(types.at(-1)).toBe("finished");
        }
        expect(calls).toHaveLength(12);
      } finally {
        await r.stop();
        await gpu.close();
      }
    },
  );
});
