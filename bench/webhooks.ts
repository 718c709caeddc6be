import { type ChildProcess, fork } from "node:child_process";
import { insertJob } from "../src/db/jobs.js";
import { insertWebhook } from "../src/db/webhooks.js";
import {
  benchDatabase,
  type CancelBenchResult,
  cancelBench,
  deadline,
  now,
  startBenchRunner,
  startStreamServer,
} from "./cancel.js";
import { type Stats, summarize } from "./stats.js";

export interface WebhookBenchResult {
  driver: string;
  jobs: number;
  /** The job's end announced on its instance (after the commit) → the receiver has the request (ms). */
  endToReceived: Stats;
  cancelPlain: CancelBenchResult;
  /** The same cancel benchmark with 10 webhooks registered, one of whose receivers never answers. */
  cancelWithHooks: CancelBenchResult;
}

const secret = `whsec_${Buffer.alloc(32, 3).toString("base64")}`;

/** The receiver in its own process (bench/webhook-receiver.mjs), as a real receiver would be. */
async function startReceiver() {
  const child: ChildProcess = fork(new URL("./webhook-receiver.mjs", import.meta.url), {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const received = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  type Message = { type: string; port: number; event: string; jobId: string; at: number };
  const port = await deadline(
    new Promise<number>((resolve) => {
      child.on("message", (m: Message) => {
        if (m.type === "listening") resolve(m.port);
        else if (m.type === "received") {
          const key = `${m.event} ${m.jobId}`;
          if (!received.has(key)) received.set(key, m.at);
          waiters.get(key)?.(m.at);
        }
      });
    }),
    10_000,
    "the receiver did not start",
  );
  return {
    url: `http://127.0.0.1:${port}`,
    /** When `event` of `jobId` first arrived (absolute ms). */
    receivedAt(event: string, jobId: string, ms: number): Promise<number> {
      const key = `${event} ${jobId}`;
      const at = received.get(key);
      if (at !== undefined) return Promise.resolve(at);
      return deadline(
        new Promise<number>((resolve) => waiters.set(key, resolve)),
        ms,
        `${key} not received`,
      ).finally(() => waiters.delete(key));
    },
    stop: () => child.kill(),
  };
}

/**
 * Webhooks on loopback: how soon a job's end reaches a healthy receiver
 * (jobs run one at a time on the demo provider, one webhook for all jobs),
 * and the cancel benchmark run twice in one process, without webhooks and
 * with ten (nine to a healthy receiver, one to a receiver that hangs every
 * request until the 10 s attempt timeout): a dead receiver must not slow a cancel.
 */
export async function webhookBench(jobs = 300, cancelJobs = 1_000): Promise<WebhookBenchResult> {
  const receiver = await startReceiver();
  const stream = await startStreamServer();
  const { database, drop } = await benchDatabase();
  const parts = await startBenchRunner(database.db, stream.url, 4, {
    quick: { kind: "demo", tokens_per_second: 100_000, max_tokens: 1 },
  });
  const endToReceived: number[] = [];
  try {
    await insertWebhook(database.db, {
      owner: null,
      createdBy: "service:bench",
      url: `${receiver.url}/ok`,
      events: ["job.completed"],
      secret,
    });
    for (let i = 0; i < jobs; i++) {
      const { job } = await insertJob(database.db, {
        owner: "service:bench",
        timeoutMs: 60_000,
        maxParallel: 1,
        executions: [{ key: "a", provider: "quick", model: "m", input: { prompt: "x" } }],
      });
      const ended = new Promise<number>((resolve) => {
        const off = parts.feed.subscribe(job.id, (e) => {
          if (e.type === "end") {
            off();
            resolve(now());
          }
        });
      });
      const received = receiver.receivedAt("job.completed", job.id, 10_000);
      parts.runner.notifyNewWork();
      const endedAt = await deadline(ended, 10_000, `job ${i} did not end`);
      endToReceived.push((await received) - endedAt);
    }
  } finally {
    await parts.close();
    await drop();
    stream.stop();
  }

  const cancelPlain = await cancelBench(cancelJobs);
  const cancelWithHooks = await cancelBench(cancelJobs, async (db) => {
    for (let i = 0; i < 10; i++) {
      await insertWebhook(db, {
        owner: null,
        createdBy: "service:bench",
        url: i === 0 ? `${receiver.url}/hang` : `${receiver.url}/ok?n=${i}`,
        events: ["job.cancelled", "job.stopped"],
        secret,
      });
    }
    return async () => {};
  });
  receiver.stop();
  return {
    driver: database.driver,
    jobs,
    endToReceived: summarize(endToReceived),
    cancelPlain,
    cancelWithHooks,
  };
}
