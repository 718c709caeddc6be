import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq, inArray, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { listEvents } from "../../src/db/events.js";
import { resetRunningExecutions } from "../../src/db/executions.js";
import { UNCLAIMED } from "../../src/db/job-transitions.js";
import { insertJob } from "../../src/db/jobs.js";
import { rowsOf } from "../../src/db/rows.js";
import { jobs } from "../../src/db/schema.js";
import { CancelCause } from "../../src/providers/causes.js";
import { startFakeServer } from "../fakes/fake-server.js";
import { createTestDatabase, DRIVERS } from "../helpers/databases.js";
import { reload } from "../helpers/jobs.js";
import { jobOf, startRunner } from "../helpers/runner.js";
import { waitUntil } from "../helpers/wait.js";

const SCRIPT = new URL("../fakes/scripts/trainer.mjs", import.meta.url).pathname;

describe.each(DRIVERS)("RUNNER_CONCURRENCY on %s", (driver) => {
  it("is a hard cap: a job requeued while its old run still stops is neither run twice nor uncounted", async () => {
    const t = await createTestDatabase(driver);
    const dir = await mkdtemp(join(tmpdir(), "quench-cap-"));
    const r = await startRunner(
      t.database.db,
      {
        // Ignores SIGTERM: its run takes grace_ms to stop, as a training script might.
        trainer: { kind: "process", command: [process.execPath, SCRIPT], grace_ms: 1_500 },
      },
      { concurrency: 2, claimPollMs: 50 },
    );
    let most = 0;
    let orphan: number | undefined;
    const sampler = setInterval(() => {
      most = Math.max(most, r.runner.activeJobs(), r.manager.count());
    }, 2);
    try {
      const pidFile = join(dir, "x.json");
      const { job: x, ended } = await r.submit(
        jobOf([
          { key: "a", provider: "trainer", input: { pidFile, runMs: 2_000, ignoreTerm: true } },
        ]),
      );
      await waitUntil(() => existsSync(pidFile), 10_000, "the first run's process started");
      // The script's grandchild lives in a group of its own: the cancel below leaves it, so the test ends it.
      await waitUntil(() => readFileSync(pidFile, "utf8").length > 0, 5_000, "the pids written");
      orphan = (JSON.parse(readFileSync(pidFile, "utf8")) as { grandchild: number }).grandchild;
      // The runner loses X (its lease, say) and the reaper hands X back to the
      // queue while X's first run is still stopping.
      r.manager.cancel(x.id, new CancelCause("runner_lost", "test: lease lost"));
      await t.database.db.update(jobs).set(UNCLAIMED).where(eq(jobs.id, x.id));
      await resetRunningExecutions(t.database.db, x.id);
      // Two more jobs compete for the two slots while X's first run holds one.
      const others = await Promise.all(
        ["y", "z"].map((k) =>
          r.submit(
            jobOf([
              {
                key: "a",
                provider: "trainer",
                input: { pidFile: join(dir, `${k}.json`), runMs: 300 },
              },
            ]),
          ),
        ),
      );
      for (const o of others) expect(await o.ended).toMatchObject({ status: "completed" });
      expect(await ended).toMatchObject({ status: "completed" });
      const trail = await listEvents(t.database.db, x.id);
      expect(trail.filter((e) => e.type === "claimed")).toHaveLength(2);
      expect((await reload(t.database.db, x.id)).status).toBe("completed");
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      try {
        if (orphan !== undefined) process.kill(orphan, "SIGKILL");
      } catch {
        // Already gone.
      }
      clearInterval(sampler);
      await r.stop();
      await t.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("holds while claims ride on finishes: short jobs never have more than the cap at the provider or in the store, and slots are refilled in the finishes' own statements", async () => {
    const t = await createTestDatabase(driver);
    let inFlight = 0;
    let mostAtProvider = 0;
    const provider = await startFakeServer((_req, res) => {
      mostAtProvider = Math.max(mostAtProvider, ++inFlight);
      setImmediate(() => {
        inFlight--;
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    // Queued before the runner starts: every claim finds more waiting, so claims ride on finishes.
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const { job } = await insertJob(
        t.database.db,
        jobOf([{ key: "a", provider: "quick", model: `m${i}` }]),
      );
      ids.push(job.id);
    }
    const r = await startRunner(
      t.database.db,
      { quick: { kind: "http", url: provider.url } },
      { concurrency: 4, claimPollMs: 50 },
    );
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, r.runner.activeJobs(), r.manager.count());
    }, 1);
    try {
      await waitUntil(
        async () => {
          const rows = await t.database.db
            .select({ status: jobs.status })
            .from(jobs)
            .where(inArray(jobs.id, ids));
          return rows.every((row) => row.status === "completed");
        },
        20_000,
        "all 60 jobs completed",
      );
      expect(mostAtProvider).toBeLessThanOrEqual(4);
      expect(most).toBeLessThanOrEqual(4);
      // In the store: each claim's commit (one `at`, the transaction's start) never left
      // this instance holding more than 4 jobs. A job is held from its claim to its finish.
      const trail = await rowsOf<{ job_id: string; type: string; at: Date | string }>(
        t.database.db,
        sql`select job_id, type, at from job_events where type in ('claimed', 'finished') order by id`,
      );
      const moments = [...new Set(trail.map((e) => new Date(e.at).getTime()))].sort(
        (a, b) => a - b,
      );
      const claimedAt = new Map<string, number>();
      const finishedAt = new Map<string, number>();
      for (const e of trail)
        (e.type === "claimed" ? claimedAt : finishedAt).set(e.job_id, new Date(e.at).getTime());
      for (const m of moments) {
        let heldThen = 0;
        for (const [id, from] of claimedAt)
          if (from <= m && (finishedAt.get(id) ?? Infinity) > m) heldThen++;
        expect(heldThen, `held at ${m}`).toBeLessThanOrEqual(4);
      }
      // Some claims were made by a finish's statement: a claim and another job's finish at one moment.
      const along = [...claimedAt].filter(([id, at]) =>
        [...finishedAt].some(([other, f]) => other !== id && f === at),
      );
      expect(along.length).toBeGreaterThan(0);
    } finally {
      clearInterval(sampler);
      await r.stop();
      await provider.close();
      await t.drop();
    }
  });
});
