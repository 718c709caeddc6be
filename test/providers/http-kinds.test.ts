import { Agent } from "undici";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { background, withCancelCause } from "../../src/context/context.js";
import { CancelCause } from "../../src/providers/causes.js";
import { ProviderError } from "../../src/providers/errors.js";
import type { FakeServer } from "../fakes/fake-server.js";
import {
  flakyServer,
  openaiStreamServer,
  runpodServer,
  slowJsonServer,
} from "../fakes/providers.js";
import { registryOf, rejectionOf, runOn } from "../helpers/providers.js";
import { waitUntil } from "../helpers/wait.js";

const agent = new Agent({ keepAliveTimeout: 10_000 });
const servers: FakeServer[] = [];
async function fake<T extends FakeServer>(server: Promise<T>): Promise<T> {
  const s = await server;
  servers.push(s);
  return s;
}
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
afterAll(() => agent.close());

const userCancel = () => new CancelCause("cancelled", "user pressed cancel", "0xabc");

describe("http provider", () => {
  it("POSTs the model and input and returns the JSON answer", async () => {
    const server = await fake(slowJsonServer(0));
    const registry = await registryOf(
      { modal: { kind: "http", url: `${server.url}/infer` } },
      agent,
    );
    const [ctx, cancel] = withCancelCause(background());
    const { result } = runOn(registry, "modal", ctx, { model: "llama", input: { prompt: "hi" } });
    expect(await result).toEqual({ echo: { model: "llama", input: { prompt: "hi" } } });
    expect(server.requests.map((r) => [r.method, r.path])).toEqual([["POST", "/infer"]]);
    cancel();
  });

  it("a cancel closes the request's socket and rejects with the cancel's cause", async () => {
    const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const registry = await registryOf({ modal: { kind: "http", url: server.url } }, agent);
    const [ctx, cancel] = withCancelCause(background());
    const { result } = runOn(registry, "modal", ctx, { model: "m", input: {} });
    await server.waitFor(() => server.requests.length === 1, 5000, "the request");
    const why = userCancel();
    cancel(why);
    expect(await rejectionOf(result)).toBe(why);
    await server.waitFor(
      () => server.requests[0]?.closedAt !== undefined,
      5000,
      "the socket to close",
    );
    // undici may open a fresh idle connection after destroying the aborted one; it closes too.
    await server.waitFor(() => server.openSockets() === 0, 5000, "no open socket");
  });

  it("retries a 503 and honours Retry-After", async () => {
    const server = await fake(flakyServer({ failures: 1, status: 503, retryAfter: "1" }));
    const registry = await registryOf({ p: { kind: "http", url: server.url } }, agent);
    const [ctx] = withCancelCause(background());
    const started = performance.now();
    const { result, recorded } = runOn(
      registry,
      "p",
      ctx,
      { model: "m", input: {} },
      { retries: 2 },
    );
    expect(await result).toEqual({ ok: true });
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
    expect(server.requests).toHaveLength(2);
    expect(recorded.notes).toEqual([
      {
        type: "retry_scheduled",
        data: { provider: "p", attempt: 1, delay_ms: 1000, error: "provider_error", status: 503 },
      },
    ]);
  });

  it("never retries a 4xx", async () => {
    const server = await fake(flakyServer({ failures: 5, status: 422 }));
    const registry = await registryOf({ p: { kind: "http", url: server.url } }, agent);
    const [ctx] = withCancelCause(background());
    const err = await rejectionOf(
      runOn(registry, "p", ctx, { model: "m", input: {} }, { retries: 3 }).result,
    );
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ code: "provider_rejected", status: 422 });
    expect(server.requests).toHaveLength(1);
  });

  it("gives up after its retries with the last status's code", async () => {
    const server = await fake(flakyServer({ failures: 5, status: 429 }));
    const registry = await registryOf(
      { p: { kind: "http", url: server.url, retry_base_ms: 1 } },
      agent,
    );
    const [ctx] = withCancelCause(background());
    const err = await rejectionOf(
      runOn(registry, "p", ctx, { model: "m", input: {} }, { retries: 2 }).result,
    );
    expect(err).toMatchObject({ code: "rate_limited", status: 429 });
    expect(server.requests).toHaveLength(3);
  });

  it("retries a refused connection", async () => {
    const server = await fake(slowJsonServer(0));
    const url = server.url;
    await server.close();
    const registry = await registryOf({ p: { kind: "http", url, retry_base_ms: 1 } }, agent);
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(
      registry,
      "p",
      ctx,
      { model: "m", input: {} },
      { retries: 2 },
    );
    expect(await rejectionOf(result)).toMatchObject({ code: "connection_failed" });
    expect(recorded.notes.map((n) => n.data.error)).toEqual([
      "connection_failed",
      "connection_failed",
    ]);
  });

  it("a cancel during the backoff stops at once: no further request", async () => {
    const server = await fake(flakyServer({ failures: 5, status: 503 }));
    const registry = await registryOf(
      { p: { kind: "http", url: server.url, retry_base_ms: 600_000, retry_max_ms: 600_000 } },
      agent,
    );
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(
      registry,
      "p",
      ctx,
      { model: "m", input: {} },
      { retries: 3, random: () => 1 },
    );
    await server.waitFor(() => server.requests.length === 1, 5000, "the first request");
    await waitUntil(() => recorded.notes.length === 1, 5000);
    const started = performance.now();
    const why = userCancel();
    cancel(why);
    expect(await rejectionOf(result)).toBe(why);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(server.requests).toHaveLength(1);
  });

  it("the provider's timeout_ms fails the execution as timeout", async () => {
    const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const registry = await registryOf(
      { p: { kind: "http", url: server.url, timeout_ms: 50 } },
      agent,
    );
    const [ctx] = withCancelCause(background());
    expect(
      await rejectionOf(runOn(registry, "p", ctx, { model: "m", input: {} }).result),
    ).toMatchObject({
      code: "timeout",
    });
    await server.waitFor(() => server.openSockets() === 0, 5000, "the socket to close");
  });

  it("max_concurrency queues the second call; a cancelled waiter leaves the queue", async () => {
    const server = await fake(slowJsonServer(Number.POSITIVE_INFINITY));
    const registry = await registryOf(
      { p: { kind: "http", url: server.url, max_concurrency: 1 } },
      agent,
    );
    const slots = registry.get("p")?.slots;
    const [first, cancelFirst] = withCancelCause(background());
    const [second, cancelSecond] = withCancelCause(background());
    const a = runOn(registry, "p", first, { model: "a", input: {} });
    const b = runOn(registry, "p", second, { model: "b", input: {} });
    await server.waitFor(() => server.requests.length === 1, 5000, "the first request");
    expect(slots?.waiting).toBe(1);
    cancelSecond(userCancel());
    await rejectionOf(b.result);
    expect(slots?.waiting).toBe(0);
    expect(server.forModel("b")).toHaveLength(0);
    cancelFirst(userCancel());
    await rejectionOf(a.result);
    expect(slots?.active).toBe(0);
  });
});

describe("openai provider", () => {
  it("streams the text and returns text, usage and finish_reason", async () => {
    const server = await fake(openaiStreamServer({ tokens: 5, intervalMs: 1 }));
    const registry = await registryOf(
      { together: { kind: "openai", base_url: `${server.url}/v1`, api_key: "k" } },
      agent,
    );
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "together", ctx, {
      model: "llama",
      input: { messages: [{ role: "user", content: "hi" }] },
    });
    expect(await result).toEqual({
      text: "t0 t1 t2 t3 t4 ",
      usage: { completion_tokens: 5 },
      finish_reason: "stop",
    });
    expect(recorded.progress.at(-1)).toEqual({ text: "t0 t1 t2 t3 t4 " });
    expect(server.requests[0]).toMatchObject({
      path: "/v1/chat/completions",
      body: { model: "llama", stream: true, messages: [{ role: "user", content: "hi" }] },
    });
  });

  it("a cancel mid-stream closes the socket and keeps the text streamed so far", async () => {
    const server = await fake(openaiStreamServer({ tokens: 100_000, intervalMs: 2 }));
    const registry = await registryOf(
      { together: { kind: "openai", base_url: server.url } },
      agent,
    );
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "together", ctx, {
      model: "m",
      input: { messages: [] },
    });
    await waitUntil(() => recorded.progress.length >= 3, 5000);
    cancel(userCancel());
    await rejectionOf(result);
    await server.waitFor(
      () => server.requests[0]?.closedAt !== undefined,
      5000,
      "the socket to close",
    );
    expect((recorded.progress.at(-1) as { text: string }).text).toMatch(/^t0 t1 t2 /);
  });

  it("a stream that goes silent for stall_ms fails as stalled, keeping what it sent", async () => {
    const server = await fake(openaiStreamServer({ tokens: 100, intervalMs: 1, stallAfter: 2 }));
    const registry = await registryOf(
      { p: { kind: "openai", base_url: server.url, stall_ms: 100 } },
      agent,
    );
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(
      registry,
      "p",
      ctx,
      { model: "m", input: { messages: [] } },
      { retries: 3 },
    );
    expect(await rejectionOf(result)).toMatchObject({ code: "stalled" });
    expect(recorded.progress.at(-1)).toEqual({ text: "t0 t1 " });
    expect(server.requests).toHaveLength(1);
    await server.waitFor(() => server.openSockets() === 0, 5000, "the socket to close");
  });
});

describe("runpod provider", () => {
  it("submits, polls until COMPLETED and returns the output", async () => {
    const { server } = await runpodServer({ completeAfterPolls: 2 });
    servers.push(server);
    const registry = await registryOf(
      { rp: { kind: "runpod", base_url: server.url, poll_ms: 10 } },
      agent,
    );
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "rp", ctx, {
      model: "sdxl",
      input: { prompt: "cat" },
    });
    expect(await result).toEqual({ answer: 42 });
    expect(recorded.remoteIds).toEqual(["rp-1"]);
    // The provider's timeout_ms (15 min by default) travels as RunPod's own execution timeout.
    expect(server.requests[0]?.body).toEqual({
      input: { prompt: "cat", model: "sdxl" },
      policy: { executionTimeout: expect.any(Number) },
    });
    const body = server.requests[0]?.body as { policy?: { executionTimeout: number } } | undefined;
    expect(body?.policy?.executionTimeout).toBeGreaterThan(14 * 60_000);
    expect(body?.policy?.executionTimeout).toBeLessThanOrEqual(15 * 60_000);
  });

  it("on cancel sends the remote cancel although the job context is already aborted, and records it", async () => {
    const { server, cancels } = await runpodServer();
    servers.push(server);
    const registry = await registryOf(
      { rp: { kind: "runpod", base_url: server.url, poll_ms: 10 } },
      agent,
    );
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "rp", ctx, { model: "m", input: {} });
    await server.waitFor(
      () => server.requests.some((r) => r.path.startsWith("/status/")),
      5000,
      "a poll",
    );
    const why = userCancel();
    cancel(why);
    expect(ctx.signal.aborted).toBe(true);
    // Our side settles at once; the remote cancel and its confirmation follow.
    expect(await rejectionOf(result)).toBe(why);
    await waitUntil(() => recorded.remoteStops.length === 1, 5_000, "the remote stop");
    expect(cancels).toEqual(["rp-1"]);
    expect(recorded.notes).toEqual([
      {
        type: "remote_cancel_sent",
        data: expect.objectContaining({
          provider: "rp",
          remote_id: "rp-1",
          why: "cancelled",
          ok: true,
          answer: "requested",
        }),
      },
    ]);
    const [stop] = recorded.remoteStops;
    expect(stop).toMatchObject({ outcome: "confirmed", why: "cancelled" });
    // Confirmed only once the fake's status showed CANCELLED, 50 ms after the cancel call.
    expect(
      (stop?.confirmedAt?.getTime() ?? 0) - (stop?.requestedAt.getTime() ?? 0),
    ).toBeGreaterThanOrEqual(40);
  });

  it("a remote job that outlives the timeout is cancelled remotely too", async () => {
    const { server, cancels } = await runpodServer();
    servers.push(server);
    const registry = await registryOf(
      { rp: { kind: "runpod", base_url: server.url, poll_ms: 10, timeout_ms: 100 } },
      agent,
    );
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "rp", ctx, { model: "m", input: {} });
    expect(await rejectionOf(result)).toMatchObject({ code: "timeout" });
    await waitUntil(() => recorded.remoteStops.length === 1, 5_000, "the remote stop");
    expect(cancels).toEqual(["rp-1"]);
    expect(recorded.notes[0]?.data).toMatchObject({ why: "deadline", ok: true });
  });
});
