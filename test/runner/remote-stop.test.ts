import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { executionView, jobView } from "../../src/api/job-view.js";
import { listEvents } from "../../src/db/events.js";
import { runpodServer } from "../fakes/providers.js";
import { falServer, replicateServer } from "../fakes/remote-queues.js";
import { createTestDatabase, DRIVERS } from "../helpers/databases.js";
import { reload } from "../helpers/jobs.js";
import { LOG_DIR } from "../helpers/logs.js";
import { jobOf, startRunner } from "../helpers/runner.js";
import { waitUntil } from "../helpers/wait.js";

describe.each(DRIVERS)("remote stops recorded by the runner on %s", (driver) => {
  it("a cancel answers with our stop at once; the provider's confirmation lands on the execution later", async () => {
    const t = await createTestDatabase(driver);
    const { server, cancels } = await runpodServer({ cancelDelayMs: 150 });
    const r = await startRunner(t.database.db, {
      rp: { kind: "runpod", base_url: server.url, poll_ms: 20 },
    });
    try {
      const { job } = await r.submit(jobOf([{ key: "gen", provider: "rp", model: "sdxl" }]));
      await server.waitFor(
        () => server.requests.some((q) => q.path.startsWith("/status/")),
        10_000,
        "a status poll",
      );
      const result = await r.runner.cancelJob(job.id, { actor: "0xOwner" });
      expect(result).toMatchObject({ ok: true, contextCancelled: true });
      if (!result.ok) throw new Error("cancel refused");
      expect(result.stoppedAt).not.toBeNull();
      // The answer did not wait for the provider: nothing is confirmed yet.
      const [atCancel] = (await reload(t.database.db, job.id)).executions;
      expect(atCancel?.remoteStop ?? null).toBeNull();

      await waitUntil(
        async () => (await reload(t.database.db, job.id)).executions[0]?.remoteStop != null,
        10_000,
        "the remote stop on the execution",
        20,
      );
      const after = await reload(t.database.db, job.id);
      const exec = after.executions[0];
      if (exec === undefined) throw new Error("no execution");
      expect(cancels).toEqual([exec.remoteId]);
      const view = executionView(exec);
      expect(view.remote_stop).toMatchObject({ outcome: "confirmed" });
      const requested = Date.parse(view.remote_stop?.requested_at ?? "");
      const confirmed = Date.parse(view.remote_stop?.confirmed_at ?? "");
      expect(confirmed - requested).toBeGreaterThanOrEqual(140);
      // The job's own stop came first: the confirmation did not hold it back.
      expect(after.stoppedAt?.getTime()).toBeLessThanOrEqual(confirmed);
      const trail = await listEvents(t.database.db, job.id);
      expect(trail.find((e) => e.type === "remote_stop")?.data).toMatchObject({
        key: "gen",
        provider: "rp",
        why: "cancelled",
        outcome: "confirmed",
      });
      const metrics = await r.metrics.registry.getSingleMetricAsString("quench_remote_stops_total");
      expect(metrics).toContain('quench_remote_stops_total{provider="rp",outcome="confirmed"} 1');
      // The fake reports no billed time: wall clock from the request to the confirmed stop.
      expect(view.usage).toMatchObject({ source: "wall_clock", cost_usd: null });
      const started = exec.startedAt?.getTime() ?? 0;
      expect(view.usage.gpu_ms).toBeGreaterThanOrEqual(confirmed - started - 50);
    } finally {
      await r.stop();
      await server.close();
      await t.drop();
    }
  });

  it("usage and cost come from the provider's billed time, summed on the job", async () => {
    const t = await createTestDatabase(driver);
    const fake = await replicateServer({ completeAfterPolls: 2 });
    const r = await startRunner(t.database.db, {
      r8: {
        kind: "replicate",
        base_url: `${fake.server.url}/v1`,
        api_token: "r8_test",
        poll_ms: 10,
        price_per_second: 0.001,
      },
    });
    try {
      const { job, ended } = await r.submit(
        jobOf([
          { key: "a", provider: "r8", model: "owner/a" },
          { key: "b", provider: "r8", model: "owner/b" },
        ]),
      );
      expect(await ended).toMatchObject({ status: "completed" });
      const view = jobView(await reload(t.database.db, job.id));
      for (const e of view.executions) {
        // The fake bills metrics.predict_time = 1.5 s for each prediction.
        expect(e.usage).toEqual({ gpu_ms: 1_500, source: "provider", cost_usd: 0.0015 });
      }
      expect(view.usage).toEqual({ gpu_ms: 3_000, cost_usd: 0.003 });
      const gpu = await r.metrics.registry.getSingleMetricAsString("quench_gpu_seconds_total");
      expect(gpu).toContain('quench_gpu_seconds_total{provider="r8",outcome="completed"} 3');
    } finally {
      await r.stop();
      await fake.server.close();
      await t.drop();
    }
  });

  it("a cancel endpoint that fails records failed and the job is still cancelled and stopped", async () => {
    const t = await createTestDatabase(driver);
    const fal = await falServer({ cancelStatus: 502 });
    const r = await startRunner(t.database.db, {
      fal: { kind: "fal", base_url: fal.server.url, poll_ms: 20 },
    });
    try {
      const { job } = await r.submit(
        jobOf([{ key: "img", provider: "fal", model: "fal-ai/flux/dev" }]),
      );
      await waitUntil(
        async () => (await reload(t.database.db, job.id)).executions[0]?.remoteId != null,
        10_000,
        "the submit",
        20,
      );
      const result = await r.runner.cancelJob(job.id, { actor: "0xOwner" });
      expect(result).toMatchObject({ ok: true });
      await waitUntil(
        async () => (await reload(t.database.db, job.id)).executions[0]?.remoteStop != null,
        10_000,
        "the remote stop",
        20,
      );
      const after = await reload(t.database.db, job.id);
      expect(after.status).toBe("cancelled");
      expect(after.stoppedAt).not.toBeNull();
      expect(after.executions[0]?.remoteStop).toMatchObject({
        outcome: "failed",
        confirmed_at: null,
      });
      // The operator can alert on it: a warn line naming the job.
      const warned = readFileSync(join(LOG_DIR, `worker-${process.pid}.ndjson`), "utf8")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find(
          (l) =>
            l.job_id === job.id && l.msg === "remote cancel failed: the GPU may still be running",
        );
      expect(warned).toMatchObject({ level: 40, provider: "fal" });
    } finally {
      await r.stop();
      await fal.server.close();
      await t.drop();
    }
  });
});
