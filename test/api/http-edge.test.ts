import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Client } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { createLogger } from "../../src/logger.js";
import { listen, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { LOG_DIR } from "../helpers/logs.js";
import { waitUntil } from "../helpers/wait.js";

/** JSON `levels` deep: `[[[…1…]]]`, as text (JSON.stringify would recurse). */
const nested = (levels: number) => `${"[".repeat(levels)}1${"]".repeat(levels)}`;

describe.each(DRIVERS)("the HTTP edge on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  const logFile = join(LOG_DIR, `http-edge-${driver}-${process.pid}.ndjson`);
  let api: TestApi;
  let server: { url: string; close(): Promise<void> };
  let token: string;
  beforeAll(async () => {
    api = await startApi(
      database,
      { demo: { kind: "demo" } },
      { logger: createLogger({ level: "debug", instance: "edge", destination: logFile }) },
    );
    server = await listen(api.app);
    token = await api.serviceToken("edge", ["jobs:submit", "jobs:read", "jobs:cancel"]);
  });
  afterAll(async () => {
    await server?.close();
    await api?.close();
  });

  const logLines = () =>
    readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  const submitBody = (input: string, metadata = "{}") =>
    `{"executions":[{"key":"a","provider":"demo","model":"m","input":${input}}],"metadata":${metadata}}`;

  it("a keep-alive client reuses its socket after each early answer", async () => {
    // One connection only: every request below must travel on the same socket
    // unless the server said Connection: close (then undici opens a new one).
    const client = new Client(server.url, { pipelining: 1 });
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const early: Array<[string, Parameters<Client["request"]>[0], number]> = [
      [
        "413 on Content-Length",
        { path: "/api/v1/jobs", method: "POST", headers: auth, body: "x".repeat(2 << 20) },
        413,
      ],
      [
        "413 on a chunked body",
        {
          path: "/api/v1/jobs",
          method: "POST",
          headers: auth,
          body: Readable.from(
            (function* () {
              for (let i = 0; i < 32; i++) yield Buffer.alloc(64 << 10, 0x20);
            })(),
          ),
        },
        413,
      ],
      [
        "401 before the body is read",
        {
          path: "/api/v1/jobs",
          method: "POST",
          headers: { "content-type": "application/json" },
          body: submitBody("{}"),
        },
        401,
      ],
      [
        "400 for text/plain",
        {
          path: "/api/v1/jobs",
          method: "POST",
          headers: { ...auth, "content-type": "text/plain" },
          body: "hello",
        },
        400,
      ],
      [
        "404 with a body",
        { path: "/api/v1/nowhere", method: "POST", headers: auth, body: "{}" },
        404,
      ],
    ];
    try {
      for (const [what, request, status] of early) {
        const res = await client.request(request);
        await res.body.text();
        expect(res.statusCode, what).toBe(status);
        const next = await client.request({ path: "/healthz", method: "GET" });
        expect(next.statusCode, `the request after ${what}`).toBe(200);
        await next.body.text();
      }
    } finally {
      await client.close();
    }
  });

  it("JSON nested 3,000 and 50,000 deep in input or metadata is a 400, never a 500", async () => {
    for (const levels of [3_000, 50_000]) {
      for (const body of [
        submitBody(nested(levels)),
        submitBody("{}", `{"x":${nested(levels)}}`),
      ]) {
        const res = await api.call("POST", "/api/v1/jobs", { token, body });
        expect(res.status, `depth ${levels}`).toBe(400);
        expect(await res.json()).toMatchObject({
          error: { code: "invalid_request", details: [{ path: "body" }] },
        });
      }
    }
    // Brackets inside strings are text, not nesting.
    const stringy = await api.call("POST", "/api/v1/jobs", {
      token,
      body: submitBody(JSON.stringify({ prompt: "[".repeat(5_000) })),
    });
    expect(stringy.status).toBe(201);
  });

  it("a cancel over the wire takes no body, an empty JSON one, or a reason; other types are a 400", async () => {
    const forms: [string, Record<string, string>, string | undefined, number][] = [
      ["no body, no content type (curl -X POST)", {}, undefined, 200],
      ["an empty body sent as JSON", { "content-type": "application/json" }, "", 200],
      ["{}", { "content-type": "application/json" }, "{}", 200],
      ["a reason", { "content-type": "application/json; charset=utf-8" }, '{"reason":"r"}', 200],
      ["a form body", { "content-type": "application/x-www-form-urlencoded" }, "reason=r", 400],
      ["an unknown field", { "content-type": "application/json" }, '{"why":"r"}', 400],
    ];
    for (const [what, headers, body, status] of forms) {
      const created = await api.call("POST", "/api/v1/jobs", {
        token,
        body: submitBody('{"prompt":"hi"}'),
      });
      const { id } = (await created.json()) as { id: string };
      const res = await fetch(`${server.url}/api/v1/jobs/${id}/cancel`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, ...headers },
        ...(body === undefined ? {} : { body }),
      });
      const answer = (await res.json()) as { ok?: boolean; error?: { code: string } };
      expect(res.status, what).toBe(status);
      if (status === 200) expect(answer.ok, what).toBe(true);
      else expect(answer.error?.code, what).toBe("invalid_request");
    }
  });

  it("JSON exactly 256 levels deep is accepted, 257 refused", async () => {
    // The body object is level 1 and metadata level 2, so 254 more levels inside make 256.
    const ok = await api.call("POST", "/api/v1/jobs", {
      token,
      body: submitBody("{}", `{"x":${nested(254)}}`),
    });
    expect(ok.status).toBe(201);
    const deep = await api.call("POST", "/api/v1/jobs", {
      token,
      body: submitBody("{}", `{"x":${nested(255)}}`),
    });
    expect(deep.status).toBe(400);
  });

  it("a client that abandons its body is logged as a request, not as an unhandled error", async () => {
    const port = Number(new URL(server.url).port);
    const socket = connect(port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    const id = `abandon-${driver}-${Date.now()}`;
    socket.write(
      `POST /api/v1/jobs HTTP/1.1\r\nHost: quench.test\r\nX-Request-Id: ${id}\r\n` +
        `Authorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
        `Content-Length: 1000\r\n\r\n{"executions":`,
    );
    // Once the server has the headers, it waits for the rest; the client leaves.
    await waitUntil(() => socket.bytesWritten > 0, 2_000, "headers sent");
    socket.destroy();
    await waitUntil(
      () => logLines().some((l) => l.request_id === id && l.msg === "request"),
      5_000,
      "the abandoned request's log line",
    );
    const lines = logLines().filter((l) => l.request_id === id);
    expect(lines.filter((l) => l.msg === "unhandled error")).toEqual([]);
    expect(lines.find((l) => l.msg === "request")?.status).toBe(400);
  });
});
