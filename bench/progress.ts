import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createParser } from "eventsource-parser";
import { request } from "undici";
import { benchDatabase, deadline, now, startBenchRunner, startStreamServer } from "./cancel.js";
import { startBenchApi } from "./http.js";
import { type Stats, summarize } from "./stats.js";

const TRAINER = new URL("../test/fakes/scripts/trainer.mjs", import.meta.url).pathname;

export interface ProgressBenchResult {
  driver: string;
  reports: number;
  /** The training script printed a report → the SSE `progress` event with it arrived (ms). */
  printedToEvent: Stats;
  cancels: number;
  /** cancelJob() → returned with stopped_at: every process of the group gone (ms). */
  cancelToGroupGone: Stats;
}

/**
 * Training runs on the `process` kind: (1) one run prints a progress report
 * every `everyMs`, stamped with the absolute time it printed; an SSE client
 * on loopback times each `progress` event against that stamp. (2) `cancels`
 * runs, each reporting, are cancelled one at a time; the cancel returns once
 * the whole process group (the script and its grandchild) is gone.
 */
export async function progressBench(
  reports = 400,
  everyMs = 20,
  cancels = 50,
): Promise<ProgressBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), "quench-bench-progress-"));
  const stream = await startStreamServer();
  const { database, drop } = await benchDatabase();
  const trainer = { kind: "process", command: [process.execPath, TRAINER], grace_ms: 2_000 };
  const parts = await startBenchRunner(database.db, stream.url, 8, { trainer });
  const { call, base, client, server, headers } = await startBenchApi(database, parts);
  const printedToEvent: number[] = [];
  const cancelToGroupGone: number[] = [];
  try {
    const job = await call("POST", "/jobs", {
      executions: [
        {
          key: "train",
          provider: "trainer",
          model: "m",
          input: {
            pidFile: join(dir, "run.json"),
            runMs: 600_000,
            reportEveryMs: everyMs,
            reports,
            total: reports,
          },
        },
      ],
    });
    const res = await request(`${base}/jobs/${job.id}/stream`, {
      headers: { authorization: headers.authorization },
      dispatcher: client,
    });
    let last = 0;
    const parser = createParser({
      onEvent: (e) => {
        if (e.event !== "progress") return;
        const at = now();
        const report = (JSON.parse(e.data) as { progress: { step: number; at: number } | null })
          .progress;
        if (report === null || report.step <= last) return;
        last = report.step;
        printedToEvent.push(at - report.at);
      },
    });
    const decoder = new TextDecoder();
    await deadline(
      (async () => {
        for await (const chunk of res.body) {
          parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
          if (last >= reports) break;
        }
      })(),
      reports * everyMs + 30_000,
      "not every report arrived",
    );
    res.body.destroy();
    await parts.runner.cancelJob(job.id, { actor: "bench" });

    for (let i = 0; i < cancels; i++) {
      const run = await call("POST", "/jobs", {
        executions: [
          {
            key: "train",
            provider: "trainer",
            model: "m",
            input: { pidFile: join(dir, `c${i}.json`), runMs: 600_000, reportEveryMs: 10 },
          },
        ],
      });
      // The script and its grandchild are up once it has written their pids.
      const pidFile = join(dir, `c${i}.json`);
      await deadline(
        (async () => {
          while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 5));
        })(),
        10_000,
        "the run never started",
      );
      const t0 = now();
      const result = await parts.runner.cancelJob(run.id, { actor: "bench" });
      if (!result.ok || result.stoppedAt === null) throw new Error("the stop was not acknowledged");
      cancelToGroupGone.push(now() - t0);
    }
  } finally {
    await parts.close();
    await new Promise((resolve) => server.close(resolve));
    await client.close();
    await drop();
    stream.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return {
    driver: database.driver,
    reports: printedToEvent.length,
    printedToEvent: summarize(printedToEvent),
    cancels,
    cancelToGroupGone: summarize(cancelToGroupGone),
  };
}
