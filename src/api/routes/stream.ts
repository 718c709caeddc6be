import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { Db } from "../../db/connection.js";
import { getJob } from "../../db/jobs.js";
import { isTerminalJobStatus } from "../../db/statuses.js";
import { isDatabaseUnavailable } from "../../db/unavailable.js";
import type { FeedEvent, JobFeed } from "../../runner/job-feed.js";
import type { ApiEnv } from "../env.js";
import { jobFor } from "../job-access.js";
import { executionView, jobView } from "../job-view.js";
import type { StreamRegistry } from "../streams.js";

export interface StreamRoutesDeps {
  db: Db;
  feed: JobFeed;
  streams: StreamRegistry;
  heartbeatMs?: number;
  /** How often the stream re-reads the job: catches changes made by other instances. */
  pollMs?: number;
}

/**
 * `GET /jobs/:id/stream` (SPEC.md section 3): a `job` snapshot on connect,
 * then `job`, `execution`, `progress` as they happen, a comment heartbeat,
 * and `end` once the job is terminal, after which the stream closes. A
 * client that disconnects is unsubscribed at once: nothing stays behind.
 */
export function streamRoutes(deps: StreamRoutesDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const pollMs = deps.pollMs ?? 1_000;

  app.get("/jobs/:id/stream", async (c) => {
    const first = await jobFor(deps.db, c.get("principal"), c.req.param("id"), "jobs:read");
    c.header("cache-control", "no-store");
    c.header("x-accel-buffering", "no");
    return streamSSE(c, async (stream) => {
      const pending: FeedEvent[] = [];
      let wake = () => {};
      let closed = false;
      const close = () => {
        closed = true;
        wake();
      };
      const unsubscribe = deps.feed.subscribe(first.id, (event) => {
        pending.push(event);
        wake();
      });
      const unregister = deps.streams.add(close);
      stream.onAbort(close);
      const send = (event: string, data: unknown) =>
        stream.writeSSE({ event, data: JSON.stringify(data) });
      /** Events seen while the database was unreachable, for the next re-read. */
      const deferred: FeedEvent[] = [];
      try {
        let status = first.status;
        await send("job", jobView(first));
        let lastBeat = Date.now();
        while (!closed && !isTerminalJobStatus(status)) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(pollMs, heartbeatMs));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
            if (pending.length > 0 || closed) wake();
          });
          wake = () => {};
          if (closed) break;
          const events = pending.splice(0);
          // The latest progress per execution is enough; older ones are superseded.
          const progress = new Map<string, FeedEvent>();
          let reload = events.length === 0; // a quiet interval: re-read for other instances' changes
          for (const event of events) {
            if (event.type === "progress") progress.set(event.executionId, event);
            else reload = true;
          }
          for (const event of progress.values()) {
            if (event.type === "progress") {
              await send("progress", {
                execution_id: event.executionId,
                key: event.key,
                output: event.output,
              });
            }
          }
          if (reload) {
            // A database that is away for a while does not end the stream: the
            // events wait for the next re-read, and heartbeats keep the client on.
            const job = await getJob(deps.db, first.id).catch((err: unknown) => {
              if (isDatabaseUnavailable(err)) return null;
              throw err;
            });
            const changes = [...deferred.splice(0), ...events];
            if (job === undefined) break;
            if (job === null) deferred.push(...changes.filter((e) => e.type !== "progress"));
            else {
              for (const event of changes) {
                if (event.type !== "execution") continue;
                const exec = job.executions.find((e) => e.id === event.executionId);
                if (exec) await send("execution", executionView(exec));
              }
              if (
                job.status !== status ||
                changes.some((e) => e.type === "job" || e.type === "end")
              ) {
                status = job.status;
                await send("job", jobView(job));
              }
            }
          }
          if (Date.now() - lastBeat >= heartbeatMs) {
            await stream.write(": heartbeat\n\n");
            lastBeat = Date.now();
          }
        }
        if (isTerminalJobStatus(status)) await send("end", { status });
      } finally {
        unsubscribe();
        unregister();
      }
    });
  });

  return app;
}
