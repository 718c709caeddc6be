import { describe, expect, it } from "vitest";
import { mintToken } from "../../src/cli/commands/token.js";
import { createClient } from "../../src/client/client.js";
import { signInWithAccount } from "../../src/client/siwe.js";
import { listen, newWallet } from "../helpers/api.js";
import { findLeaks } from "../helpers/log-scan.js";
import { rememberSecret } from "../helpers/logs.js";
import { waitForLogLine } from "../helpers/process.js";
import { startServer } from "../helpers/server.js";

type Line = Record<string, unknown>;
const lines = (text: string): Line[] =>
  text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Line);

describe("the log scan", () => {
  it("finds tokens, bearer headers, keys, signatures and known secrets, and nothing in ordinary lines", () => {
    const jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjbGkiLCJzY29wZSI6ImpvYnM6cmVhZCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";
    const text = [
      '{"msg":"request","request_id":"6f1f4a52-0000-4000-8000-000000000000","path":"/api/v1/jobs"}',
      `{"msg":"oops","token":"${jwt}"}`,
      '{"msg":"header","h":"Bearer abcdefghijkl"}',
      `{"msg":"key","k":"0x${"ab".repeat(32)}"}`,
      `{"msg":"sig","s":"0x${"cd".repeat(65)}"}`,
      '{"msg":"secret","v":"my-very-own-secret-value"}',
      '{"msg":"wallet signed in","address":"0x45850b53BF5fafF83Fb8E97F0fD20a2E10096Dc2"}',
    ].join("\n");
    expect(findLeaks("f", text, ["my-very-own-secret-value"])).toEqual([
      { file: "f", line: 2, what: "a JWT" },
      { file: "f", line: 3, what: "a bearer header" },
      { file: "f", line: 4, what: "an Ethereum signature or private key" },
      { file: "f", line: 5, what: "an Ethereum signature or private key" },
      { file: "f", line: 6, what: "a secret a test made" },
    ]);
  });
});

describe("a real server's logs", () => {
  it("are JSON lines where every job's line carries job_id, every request's its request id, and no credential", async () => {
    const server = await startServer("logs-test");
    try {
      const minted = await mintToken({
        env: server.env,
        scopes: undefined,
        sub: "logs",
        ttl: undefined,
      });
      rememberSecret(minted.token);
      const client = createClient({ url: server.url, token: minted.token });
      const job = await client.submit({
        executions: [{ key: "chat", provider: "slow", model: "demo", input: { messages: [] } }],
      });
      for await (const e of client.stream(job.id)) if (e.event === "progress") break;
      const res = await fetch(`${server.url}/api/v1/jobs/${job.id}/cancel`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${minted.token}`,
          "x-request-id": "cancel-from-logs-test",
        },
      });
      expect(res.status).toBe(200);
      const wallet = createClient({ url: server.url });
      const session = await signInWithAccount(wallet, newWallet());
      rememberSecret(session.token);
      await wallet.jobs();
      await waitForLogLine(server.proc, (l) => l.msg === "job stopped", 10_000);

      const out = lines(server.proc.stdout());
      for (const line of out) {
        expect(line).toMatchObject({
          level: expect.any(Number),
          time: expect.any(String),
          instance: "logs-test",
        });
      }
      const about = out.filter((l) => l.job_id === job.id).map((l) => l.msg);
      expect(about).toEqual(
        expect.arrayContaining(["job submitted", "job started", "job cancelled", "job stopped"]),
      );
      const requests = out.filter((l) => l.msg === "request");
      expect(requests.length).toBeGreaterThan(3);
      for (const r of requests) expect(typeof r.request_id).toBe("string");
      const cancel = requests.find((r) => r.path === `/api/v1/jobs/${job.id}/cancel`);
      expect(cancel).toMatchObject({
        request_id: "cancel-from-logs-test",
        job_id: job.id,
        status: 200,
      });
      expect(out.find((l) => l.msg === "job cancelled")).toMatchObject({
        request_id: "cancel-from-logs-test",
        job_id: job.id,
      });
      expect(findLeaks("logs-test", server.proc.stdout(), [minted.token, session.token])).toEqual(
        [],
      );
    } finally {
      await server.stop();
    }
  });

  it("follow LOG_LEVEL: at warn, a quiet server prints nothing", async () => {
    const free = await listen({ fetch: () => new Response("") });
    await free.close();
    const port = new URL(free.url).port;
    const server = await startServer("quiet-test", { LOG_LEVEL: "warn", PORT: port });
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect(server.proc.stdout()).toBe("");
    } finally {
      await server.stop();
    }
  });
});
