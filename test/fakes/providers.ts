import { type FakeServer, sseChunk, startFakeServer } from "./fake-server.js";

/** Answers `{"echo": body}` after `delayMs` (never, if Infinity: only a cancel ends it). */
export function slowJsonServer(delayMs: number): Promise<FakeServer> {
  return startFakeServer((_req, res, recorded) => {
    if (!Number.isFinite(delayMs)) return;
    const timer = setTimeout(() => {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ echo: recorded.body }));
    }, delayMs);
    res.once("close", () => clearTimeout(timer));
  });
}

/**
 * An OpenAI-compatible stream of `tokens` tokens ("t0 t1 …"), one every
 * `intervalMs`. With `stallAfter`, it goes silent after that many tokens and
 * keeps the connection open.
 */
export function openaiStreamServer(options: {
  tokens: number;
  intervalMs: number;
  stallAfter?: number;
}): Promise<FakeServer> {
  return startFakeServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    let sent = 0;
    const timer = setInterval(() => {
      if (options.stallAfter !== undefined && sent >= options.stallAfter) {
        clearInterval(timer);
        return;
      }
      if (sent < options.tokens) {
        sseChunk(res, `t${sent} `);
        sent++;
        return;
      }
      clearInterval(timer);
      sseChunk(res, "", "stop");
      res.write(`data: ${JSON.stringify({ choices: [], usage: { completion_tokens: sent } })}\n\n`);
      res.end("data: [DONE]\n\n");
    }, options.intervalMs);
    res.once("close", () => clearInterval(timer));
  });
}

/** The first `failures` requests get `status` (with Retry-After if given); later ones succeed. */
export function flakyServer(options: {
  failures: number;
  status: number;
  retryAfter?: string;
}): Promise<FakeServer> {
  let seen = 0;
  return startFakeServer((_req, res) => {
    seen++;
    if (seen <= options.failures) {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (options.retryAfter !== undefined) headers["retry-after"] = options.retryAfter;
      res.writeHead(options.status, headers).end('{"error":"try again"}');
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
}

/**
 * A RunPod-like async API: `POST /run` → id; `GET /status/:id` IN_PROGRESS
 * until `completeAfterPolls` polls (never, if undefined); `POST /cancel/:id`
 * is recorded in `cancels`.
 */
export async function runpodServer(
  options: { completeAfterPolls?: number; cancelDelayMs?: number } = {},
) {
  const cancels: string[] = [];
  const cancelTimes = new Map<string, number>();
  const polls = new Map<string, number>();
  let next = 0;
  const server = await startFakeServer((req, res) => {
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    const path = req.url ?? "";
    if (req.method === "POST" && path === "/run") {
      const id = `rp-${++next}`;
      polls.set(id, 0);
      return json(200, { id, status: "IN_QUEUE" });
    }
    const status = /^\/status\/(.+)$/.exec(path);
    if (req.method === "GET" && status?.[1]) {
      const id = status[1];
      const count = (polls.get(id) ?? 0) + 1;
      polls.set(id, count);
      // A real queue shows the cancel only once the worker has stopped: a short while later.
      const cancelledAt = cancelTimes.get(id);
      if (cancelledAt !== undefined && Date.now() - cancelledAt >= (options.cancelDelayMs ?? 50)) {
        return json(200, { id, status: "CANCELLED" });
      }
      if (options.completeAfterPolls !== undefined && count >= options.completeAfterPolls) {
        return json(200, { id, status: "COMPLETED", output: { answer: 42 } });
      }
      return json(200, { id, status: "IN_PROGRESS" });
    }
    const cancel = /^\/cancel\/(.+)$/.exec(path);
    if (req.method === "POST" && cancel?.[1]) {
      cancels.push(cancel[1]);
      cancelTimes.set(cancel[1], Date.now());
      return json(200, { id: cancel[1], status: "CANCELLED" });
    }
    json(404, { error: "not found" });
  });
  return { server, cancels };
}
