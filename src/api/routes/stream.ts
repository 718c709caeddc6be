import { streamSSE } from "hono/streaming";
import type { Db } from "../../db/connection.js";
import { getJob, withQueuePositions } from "../../db/jobs.js";
import { isDatabaseUnavailable } from "../../db/unavailable.js";
import type { FeedEvent, JobFeed } from "../../runner/job-feed.js";
import { isTerminalJobStatus, type JobStatus } from "../../vocabulary.js";
import * as routes from "../contract/jobs-routes.js";
import { jobFor } from "../job-access.js";
import { executionView, jobView } from "../job-view.js";
import { router } from "../router.js";
import type { StreamRegistry } from "../streams.js";

/**
 * Whether the stream has told everything: the job is terminal and, if it
 * was cancelled, its work has stopped (so the last snapshot has `stopped_at`
 * and the partial output the stop kept).
 */
function over(job: { status: JobStatus; stoppedAt: Date | null }): boolean {
  return isTerminalJobStatus(job.status) && (job.status !== "cancelled" || job.stoppedAt !== null);
}

/** The reconnect delay the stream asks of clients (SSE `retry:`). */
const RECONNECT_MS = 3_000;

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
export function streamRoutes(deps: StreamRoutesDeps) {
  const app = router();
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const pollMs = deps.pollMs ?? 1_000;

  app.openapi(routes.streamJob, async (c) => {
    const found = await jobFor(deps.db, c.get("principal"), c.req.valid("param").id, "jobs:read");
    // A reconnect (an EventSource sends Last-Event-ID) to a job that has ended has nothing
    // more to hear: 204 tells a standard client to stop instead of reconnecting forever.
    if (c.req.valid("header")["Last-Event-ID"] !== undefined && over(found)) {
      return c.body(null, 204);
    }
    const first = (await withQueuePositions(deps.db, [found]))[0] ?? {
      ...found,
      queuePosition: null,
    };
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
      let sequence = 0;
      // Every event has an id; the first also tells the client how soon to reconnect.
      const send = (event: string, data: unknown) => {
        sequence++;
        return stream.writeSSE({
          event,
          data: JSON.stringify(data),
          id: String(sequence),
          ...(sequence === 1 ? { retry: RECONNECT_MS } : {}),
        });
      };
      /** The latest structured report per execution: coalesced events keep it. */
      const reports = new Map<string, unknown>();
      /** What each execution looked like when last sent: any change is one `execution` event. */
      const sent = new Map(first.executions.map((e) => [e.id, JSON.stringify(executionView(e))]));
      /** Events seen while the database was unreachable, for the next re-read. */
      const deferred: FeedEvent[] = [];
      try {
        let status = first.status;
        let finished = over(first);
        let position = first.queuePosition;
        await send("job", jobView(first));
        let lastBeat = Date.now();
        let lastRead = 0;
        while (!closed && !finished) {
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
          // Re-read after a quiet interval (other instances' changes), and at
          // least every pollMs while progress flows: the snapshot was read
          // before the subscription, so a change in between has no event here,
          // and a stream of progress alone must not hide it (the first pass
          // always re-reads, which closes that gap).
          let reload = events.length === 0 || Date.now() - lastRead >= pollMs;
          for (const event of events) {
            if (event.type === "progress") {
              progress.set(event.executionId, event);
              if (event.progress !== undefined) reports.set(event.executionId, event.progress);
            } else reload = true;
          }
          for (const event of progress.values()) {
            if (event.type === "progress") {
              await send("progress", {
                execution_id: event.executionId,
                key: event.key,
                output: event.output,
                progress: reports.get(event.executionId) ?? null,
              });
            }
          }
          if (reload) {
            lastRead = Date.now();
            // A database that is away for a while does not end the stream: the
            // events wait for the next re-read, and heartbeats keep the client on.
            const job = await getJob(deps.db, first.id)
              .then(async (j) =>
                j === undefined ? j : (await withQueuePositions(deps.db, [j]))[0],
              )
              .catch((err: unknown) => {
                if (isDatabaseUnavailable(err)) return null;
                throw err;
              });
            const changes = [...deferred.splice(0), ...events];
            if (job === undefined) break;
            if (job === null) deferred.push(...changes.filter((e) => e.type !== "progress"));
            else {
              // Every execution that changed, whoever changed it: a cancel's, another instance's.
              for (const exec of job.executions) {
                const view = executionView(exec);
                const text = JSON.stringify(view);
                if (sent.get(exec.id) === text) continue;
                sent.set(exec.id, text);
                await send("execution", view);
              }
              if (
                job.status !== status ||
                job.queuePosition !== position ||
                over(job) !== finished ||
                changes.some((e) => e.type === "job" || e.type === "end")
              ) {
                status = job.status;
                finished = over(job);
                position = job.queuePosition;
                await send("job", jobView(job));
              }
            }
          }
          if (Date.now() - lastBeat >= heartbeatMs) {
            await stream.write(": heartbeat\n\n");
            lastBeat = Date.now();
          }
        }
        if (finished) await send("end", { status });
      } finally {
        unsubscribe();
        unregister();
      }
    });
  });

  return app;
}
