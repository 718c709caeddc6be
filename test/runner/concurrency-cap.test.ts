import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { listEvents } from "../../src/db/events.js";
import { resetRunningExecutions } from "../../src/db/executions.js";
import { UNCLAIMED } from "../../src/db/job-transitions.js";
import { jobs } from "../../src/db/schema.js";
import { CancelCause } from "../../src/providers/causes.js";
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
});
