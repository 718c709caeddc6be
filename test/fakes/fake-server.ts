import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** One request a fake provider received, with the life of the socket it came on. */
export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  /** The `model` of the body (jobs in a test use distinct models to tell their sockets apart). */
  model: string | undefined;
  openedAt: number;
  /** When the socket of this request closed (performance.now()); undefined while open. */
  closedAt: number | undefined;
}

export type FakeHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  recorded: RecordedRequest,
) => void;

/**
 * A real HTTP server on loopback that records every request and when its
 * socket closes, so a test can assert that a cancel closed exactly the
 * sockets of one job. `waitFor` waits for a condition with a deadline,
 * re-checked on every recorded event (no sleeping).
 */
export interface FakeServer {
  readonly url: string;
  readonly requests: RecordedRequest[];
  openSockets(): number;
  forModel(model: string): RecordedRequest[];
  waitFor(condition: () => boolean, ms: number, what: string): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeServer(handler: FakeHandler): Promise<FakeServer> {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const onSocket = new Map<Socket, RecordedRequest[]>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body: unknown = null;
      const text = Buffer.concat(chunks).toString("utf8");
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      const model =
        (body as { model?: unknown; input?: { model?: unknown } } | null)?.model ??
        (body as { input?: { model?: unknown } } | null)?.input?.model;
      const recorded: RecordedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        body,
        model: typeof model === "string" ? model : undefined,
        openedAt: performance.now(),
        closedAt: undefined,
      };
      requests.push(recorded);
      // One close listener per socket (below), not one per keep-alive request.
      onSocket.get(req.socket)?.push(recorded);
      handler(req, res, recorded);
      events.emit("change");
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    onSocket.set(socket, []);
    socket.once("close", () => {
      const closedAt = performance.now();
      for (const recorded of onSocket.get(socket) ?? []) recorded.closedAt = closedAt;
      onSocket.delete(socket);
      sockets.delete(socket);
      events.emit("change");
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    openSockets: () => sockets.size,
    forModel: (model) => requests.filter((r) => r.model === model),
    waitFor(condition, ms, what) {
      if (condition()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!condition()) return;
          clearTimeout(timer);
          events.off("change", check);
          resolve();
        };
        const timer = setTimeout(() => {
          events.off("change", check);
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
        events.on("change", check);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes one OpenAI-style SSE chunk. */
export function sseChunk(res: ServerResponse, content: string, finish: string | null = null): void {
  res.write(
    `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`,
  );
}
