import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { waitUntil } from "../helpers/wait.js";

export interface Received {
  headers: IncomingHttpHeaders;
  /** The raw body, exactly as sent (what a Standard Webhooks verifier needs). */
  body: string;
  at: number;
  status: number | "hang";
}

/**
 * A webhook receiver on loopback that keeps every request. `answer(n)` says
 * how to answer the n-th request (1-based): a status code, or "hang" to
 * never answer (the socket stays open until the server closes).
 */
export async function webhookReceiver(
  answer: (n: number, body: string) => number | "hang" = () => 200,
  extraHeaders: Record<string, string> = {},
) {
  const received: Received[] = [];
  const hanging = new Set<import("node:http").ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const status = answer(received.length + 1, body);
      received.push({
        headers: req.headers,
        body,
        at: performance.timeOrigin + performance.now(),
        status,
      });
      if (status === "hang") {
        hanging.add(res);
        return;
      }
      res.writeHead(status, extraHeaders);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    url,
    received,
    /** Requests whose body's `type` is `type` (and, if given, whose job is `jobId`). */
    of(type: string, jobId?: string) {
      return received.filter((r) => {
        const b = JSON.parse(r.body) as { type: string; data: { id: string } };
        return b.type === type && (jobId === undefined || b.data.id === jobId);
      });
    },
    async until(cond: () => boolean, ms: number, what: string) {
      await waitUntil(cond, ms, what, 5);
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
