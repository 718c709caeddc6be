import { describe, expect, it } from "vitest";
import { slowJsonServer } from "../fakes/providers.js";
import { createTestDatabase, DRIVERS } from "../helpers/databases.js";
import { reload } from "../helpers/jobs.js";
import { jobOf, startRunner } from "../helpers/runner.js";
import { waitUntil } from "../helpers/wait.js";

const LEASE_MS = 3_000;

describe.each(DRIVERS)("lease self-fencing on %s", (driver) => {
  it("a runner cut off from the database stops the job's work before its lease can lapse", async () => {
    const t = await createTestDatabase(driver);
    const server = await slowJsonServer(Number.POSITIVE_INFINITY);
    const r = await startRunner(
      t.database.db,
      { slow: { kind: "http", url: server.url } },
      {
        leaseMs: LEASE_MS,
      },
    );
    try {
      await r.submit(jobOf([{ key: "a", provider: "slow" }]));
      await server.waitFor(
        () => server.requests.length === 1,
        10_000,
        "no request reached the provider",
      );
      const cut = performance.now();
      await t.database.close(); // every renewal fails from here on
      await server.waitFor(
        () => server.requests[0]?.closedAt !== undefined,
        LEASE_MS * 2,
        "the provider connection stayed open with the lease gone",
      );
      // The lease the store holds lapses no sooner than LEASE_MS after the last
      // renewal, which came before the cut: the work stopped before anyone else
      // could be handed the job.
      expect((server.requests[0]?.closedAt ?? Number.POSITIVE_INFINITY) - cut).toBeLessThan(
        LEASE_MS,
      );
      // The run then gives the job back (retrying while the database is away) and lets go.
      await waitUntil(() => r.manager.count() === 0, 8_000, "the job context to be released");
    } finally {
      await r.stop().catch(() => {});
      await server.close();
      await t.drop().catch(() => {});
    }
  });

  it("healthy renewals never fence: a job running for several lease periods completes", async () => {
    const t = await createTestDatabase(driver);
    const server = await slowJsonServer(2_000);
    const r = await startRunner(
      t.database.db,
      { slow: { kind: "http", url: server.url } },
      {
        leaseMs: 600,
      },
    );
    try {
      const { job, ended } = await r.submit(jobOf([{ key: "a", provider: "slow" }]));
      expect(await ended).toMatchObject({ status: "completed" });
      expect(await reload(t.database.db, job.id)).toMatchObject({
        status: "completed",
        attempt: 1,
      });
    } finally {
      await r.stop();
      await server.close();
      await t.drop();
    }
  });
});
