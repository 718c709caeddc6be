import type { IncomingMessage, ServerResponse } from "node:http";
import { type FakeServer, startFakeServer } from "./fake-server.js";

/**
 * Fakes of the remote-queue providers' documented APIs, on loopback. Each
 * keeps a submitted job "running" until it completes (after
 * `completeAfterPolls` status polls) or is cancelled, and shows the cancel
 * in its status only `cancelDelayMs` after the cancel call, as a real queue
 * does while its worker stops.
 */
export interface QueueFakeOptions {
  completeAfterPolls?: number;
  cancelDelayMs?: number;
  /** The cancel call answers this status instead (500: the cancel fails). */
  cancelStatus?: number;
  /** The cancel call never answers. */
  cancelHangs?: boolean;
  /** Status polls answer 500 (the queue's API is failing). */
  statusFails?: boolean;
  /** The work finishes just as the cancel arrives: the cancel finds it completed. */
  completeOnCancel?: boolean;
  /** The create call makes the work at once but answers only this much later (our connection may close first). */
  submitDelayMs?: number;
  /** Replicate: predictions stream `tokens` output events, one every `intervalMs`, then complete. */
  stream?: { tokens: number; intervalMs: number };
}

export interface QueueFake {
  server: FakeServer;
  /** Remote ids whose cancel call arrived, in order, with when (performance.now()). */
  cancels: { id: string; at: number }[];
  /** Request headers of each submit. */
  submits: Record<string, string | string[] | undefined>[];
}

interface RemoteJob {
  polls: number;
  cancelledAt?: number;
  completed: boolean;
}

function tracker(options: QueueFakeOptions) {
  const jobs = new Map<string, RemoteJob>();
  const cancels: { id: string; at: number }[] = [];
  let next = 0;
  return {
    jobs,
    cancels,
    create(prefix: string): string {
      const id = `${prefix}-${++next}`;
      jobs.set(id, { polls: 0, completed: false });
      return id;
    },
    /** Advances a job by one status poll: "running", "completed" or "cancelled". */
    poll(id: string): "running" | "completed" | "cancelled" | undefined {
      const job = jobs.get(id);
      if (job === undefined) return undefined;
      job.polls++;
      if (job.cancelledAt !== undefined) {
        return performance.now() - job.cancelledAt >= (options.cancelDelayMs ?? 50)
          ? "cancelled"
          : "running";
      }
      if (options.completeAfterPolls !== undefined && job.polls >= options.completeAfterPolls) {
        job.completed = true;
      }
      return job.completed ? "completed" : "running";
    },
    /** Records a cancel; false if the job had already completed. */
    cancel(id: string): boolean {
      cancels.push({ id, at: performance.now() });
      const job = jobs.get(id);
      if (job !== undefined && options.completeOnCancel) job.completed = true;
      if (job === undefined || job.completed) return false;
      job.cancelledAt ??= performance.now();
      return true;
    },
  };
}

/** Runs `answer` after `submitDelayMs` (at once without it): the work exists meanwhile. */
function later(options: QueueFakeOptions, answer: () => void): void {
  if (options.submitDelayMs === undefined) answer();
  else setTimeout(answer, options.submitDelayMs);
}

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

/** True when the cancel call must fail or hang (it is then answered, or not, here). */
function cancelMisbehaves(options: QueueFakeOptions, res: ServerResponse): boolean {
  if (options.cancelHangs) return true;
  if (options.cancelStatus !== undefined) {
    json(res, options.cancelStatus, { detail: "cancel failed" });
    return true;
  }
  return false;
}

/**
 * Replicate's HTTP API: `POST /models/{owner}/{name}/predictions` or
 * `POST /predictions` (`version`) → 201 prediction; `GET /predictions/{id}`;
 * `POST /predictions/{id}/cancel` → the prediction. Statuses `starting`,
 * `processing`, `succeeded`, `canceled`; `metrics.predict_time` in seconds.
 */
export async function replicateServer(options: QueueFakeOptions = {}): Promise<QueueFake> {
  const t = tracker(options);
  const submits: QueueFake["submits"] = [];
  let origin = "";
  const prediction = (id: string, status: string) => ({
    id,
    status,
    output: status === "succeeded" ? ["a ", "cat"] : null,
    error: null,
    metrics: status === "succeeded" || status === "canceled" ? { predict_time: 1.5 } : {},
    urls: {
      get: `${origin}/v1/predictions/${id}`,
      cancel: `${origin}/v1/predictions/${id}/cancel`,
      ...(options.stream === undefined ? {} : { stream: `${origin}/v1/stream/${id}` }),
    },
  });
  const server = await startFakeServer((req: IncomingMessage, res, recorded) => {
    const path = recorded.path;
    if (req.method === "POST" && /^\/v1\/(models\/[^/]+\/[^/]+\/)?predictions$/.test(path)) {
      submits.push(req.headers);
      const created = prediction(t.create("r8"), "starting");
      return later(options, () => json(res, 201, created));
    }
    const stream = /^\/v1\/stream\/([^/]+)$/.exec(path);
    if (req.method === "GET" && stream?.[1] && options.stream !== undefined) {
      const id = stream[1];
      const { tokens, intervalMs } = options.stream;
      res.writeHead(200, { "content-type": "text/event-stream" });
      let sent = 0;
      const timer = setInterval(() => {
        const job = t.jobs.get(id);
        if (job?.cancelledAt !== undefined) {
          clearInterval(timer);
          res.end('event: done\ndata: {"reason":"canceled"}\n\n');
          return;
        }
        if (sent < tokens) {
          res.write(`event: output\ndata: t${sent++} \n\n`);
          return;
        }
        clearInterval(timer);
        if (job !== undefined) job.completed = true;
        res.end("event: done\ndata: {}\n\n");
      }, intervalMs);
      res.once("close", () => clearInterval(timer));
      return;
    }
    const get = /^\/v1\/predictions\/([^/]+)$/.exec(path);
    if (req.method === "GET" && get?.[1]) {
      if (options.statusFails) return json(res, 500, { detail: "down" });
      const state = t.poll(get[1]);
      if (state === undefined) return json(res, 404, { detail: "Not found." });
      const status = { running: "processing", completed: "succeeded", cancelled: "canceled" }[
        state
      ];
      return json(res, 200, prediction(get[1], status));
    }
    const cancel = /^\/v1\/predictions\/([^/]+)\/cancel$/.exec(path);
    if (req.method === "POST" && cancel?.[1]) {
      if (cancelMisbehaves(options, res)) return;
      const stopped = t.cancel(cancel[1]);
      return json(res, 200, prediction(cancel[1], stopped ? "processing" : "succeeded"));
    }
    json(res, 404, { detail: "Not found." });
  });
  origin = server.url;
  return { server, cancels: t.cancels, submits };
}

/**
 * fal's queue API: `POST /{app}` → `{request_id, status_url, response_url,
 * cancel_url}`; `GET …/requests/{id}/status` (`IN_QUEUE`, `IN_PROGRESS`,
 * `COMPLETED`; a cancelled request shows `COMPLETED` once it stopped);
 * `GET …/requests/{id}` the response; `PUT …/requests/{id}/cancel` → 202
 * `CANCELLATION_REQUESTED` or 400 `ALREADY_COMPLETED`.
 */
export async function falServer(options: QueueFakeOptions = {}): Promise<QueueFake> {
  const t = tracker(options);
  const submits: QueueFake["submits"] = [];
  let origin = "";
  const server = await startFakeServer((req, res, recorded) => {
    const path = recorded.path;
    const request = /^\/([^/]+\/[^/]+)\/requests\/([^/]+)(\/status|\/cancel)?$/.exec(path);
    if (request === null && req.method === "POST") {
      submits.push(req.headers);
      const app = path.split("/").slice(1, 3).join("/");
      const id = t.create("fal");
      const at = `${origin}/${app}/requests/${id}`;
      return later(options, () =>
        json(res, 200, {
          request_id: id,
          status_url: `${at}/status`,
          response_url: at,
          cancel_url: `${at}/cancel`,
        }),
      );
    }
    const [, , id = "", verb] = request ?? [];
    if (req.method === "GET" && verb === "/status") {
      if (options.statusFails) return json(res, 500, { detail: "down" });
      const state = t.poll(id);
      if (state === undefined) return json(res, 404, { detail: "Request not found" });
      const job = t.jobs.get(id);
      const status =
        state === "running" ? (job?.polls === 1 ? "IN_QUEUE" : "IN_PROGRESS") : "COMPLETED";
      return json(res, 200, { status, request_id: id });
    }
    if (req.method === "GET" && verb === undefined && request !== null) {
      return json(res, 200, { images: [{ url: "https://fal.media/cat.png" }] });
    }
    if (req.method === "PUT" && verb === "/cancel") {
      if (cancelMisbehaves(options, res)) return;
      return t.cancel(id)
        ? json(res, 202, { status: "CANCELLATION_REQUESTED" })
        : json(res, 400, { status: "ALREADY_COMPLETED" });
    }
    json(res, 404, { detail: "Not found" });
  });
  origin = server.url;
  return { server, cancels: t.cancels, submits };
}
