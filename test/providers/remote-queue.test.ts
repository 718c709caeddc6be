import { Agent } from "undici";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { background, withCancelCause, withTimeout } from "../../src/context/context.js";
import { CancelCause } from "../../src/providers/causes.js";
import type { FakeServer } from "../fakes/fake-server.js";
import {
  falServer,
  type QueueFake,
  type QueueFakeOptions,
  replicateServer,
} from "../fakes/remote-queues.js";
import { type Recorded, registryOf, rejectionOf, runOn } from "../helpers/providers.js";
import { waitUntil } from "../helpers/wait.js";

const agent = new Agent({ keepAliveTimeout: 10_000 });
const servers: FakeServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
afterAll(() => agent.close());

interface Kind {
  name: "replicate" | "fal";
  fake(options?: QueueFakeOptions): Promise<QueueFake>;
  config(url: string): Record<string, unknown>;
  model: string;
  /** The output the fake's completed work yields. */
  output: unknown;
}

const KINDS: Kind[] = [
  {
    name: "replicate",
    fake: replicateServer,
    config: (url) => ({ kind: "replicate", base_url: `${url}/v1`, api_token: "r8_test" }),
    model: "stability-ai/sdxl",
    output: ["a ", "cat"],
  },
  {
    name: "fal",
    fake: falServer,
    config: (url) => ({ kind: "fal", base_url: url, api_key: "fal-key" }),
    model: "fal-ai/flux/dev",
    output: { images: [{ url: "https://fal.media/cat.png" }] },
  },
];

async function start(
  kind: Kind,
  options: QueueFakeOptions = {},
  extra: Record<string, unknown> = {},
) {
  const fake = await kind.fake(options);
  servers.push(fake.server);
  const registry = await registryOf(
    { q: { ...kind.config(fake.server.url), poll_ms: 10, cancel_timeout_ms: 300, ...extra } },
    agent,
  );
  return { fake, registry };
}

const userCancel = () => new CancelCause("cancelled", "the user asked", "0xUser");
/**
 * Submits on `kind`'s fake, cancels as a user once `submitted` holds (by
 * default: we know the remote work's id), and waits for our side's stop.
 */
async function cancelledRun(
  kind: Kind,
  options: QueueFakeOptions = {},
  extra: Record<string, unknown> = {},
  submitted: (fake: QueueFake, recorded: Recorded) => boolean = (_, r) => r.remoteIds.length === 1,
) {
  const { fake, registry } = await start(kind, options, extra);
  const [ctx, cancel] = withCancelCause(background());
  const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
  await waitUntil(() => submitted(fake, recorded), 5_000, "the submit");
  const why = userCancel();
  cancel(why);
  return { fake, recorded, why, rejection: await rejectionOf(result) };
}

const stopOf = async (recorded: Recorded) => {
  await waitUntil(() => recorded.remoteStops.length === 1, 10_000, "the remote stop");
  return recorded.remoteStops[0];
};

describe.each(KINDS)("remote queue: $name", (kind) => {
  it("submits, polls until the work ends and returns its output", async () => {
    const { fake, registry } = await start(kind, { completeAfterPolls: 3 });
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "q", ctx, {
      model: kind.model,
      input: { prompt: "cat" },
    });
    expect(await result).toEqual(kind.output);
    expect(recorded.remoteIds).toHaveLength(1);
    expect(fake.cancels).toEqual([]);
    const auth = fake.submits[0]?.authorization;
    expect(auth).toBe(kind.name === "fal" ? "Key fal-key" : "Bearer r8_test");
  });

  it("a cancel stops our side at once, sends the provider's cancel and confirms the end", async () => {
    const { fake, registry } = await start(kind, { cancelDelayMs: 80 });
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    await waitUntil(() => recorded.remoteIds.length === 1, 5_000, "the submit");
    const why = userCancel();
    cancel(why);
    expect(await rejectionOf(result)).toBe(why);
    // The attempt settled before the provider confirmed anything.
    expect(recorded.remoteStops).toEqual([]);
    const stop = await stopOf(recorded);
    expect(fake.cancels.map((c) => c.id)).toEqual(recorded.remoteIds);
    expect(stop).toMatchObject({ outcome: "confirmed", why: "cancelled" });
    const waited = (stop?.confirmedAt?.getTime() ?? 0) - (stop?.requestedAt.getTime() ?? 0);
    expect(waited).toBeGreaterThanOrEqual(70); // only once the fake showed the end
  });

  it("a cancel that comes while the create call is in flight still stops the work it created", async () => {
    // Cancelled once the provider has made the work, while its answer (the work's id) is on its way.
    const { fake, recorded, why, rejection } = await cancelledRun(
      kind,
      { submitDelayMs: 150 },
      {},
      (f) => f.submits.length === 1,
    );
    expect(rejection).toBe(why);
    expect(recorded.remoteIds).toHaveLength(1);
    const stop = await stopOf(recorded);
    expect(fake.cancels.map((c) => c.id)).toEqual(recorded.remoteIds);
    expect(stop).toMatchObject({ outcome: "confirmed", why: "cancelled" });
  });

  it("a cancel before the create call sends nothing to the provider", async () => {
    const { fake, registry } = await start(kind);
    const [ctx, cancel] = withCancelCause(background());
    const why = userCancel();
    cancel(why);
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    expect(await rejectionOf(result)).toBe(why);
    expect(fake.submits).toEqual([]);
    expect(recorded.remoteIds).toEqual([]);
  });

  it("a cancel call that fails is a failed remote stop, noted", async () => {
    const { recorded } = await cancelledRun(kind, { cancelStatus: 500 });
    expect(await stopOf(recorded)).toMatchObject({ outcome: "failed", confirmedAt: null });
    expect(recorded.notes.at(-1)).toMatchObject({
      type: "remote_cancel_sent",
      data: { ok: false },
    });
  });

  it("a cancel call that hangs fails after cancel_timeout_ms", async () => {
    const { recorded } = await cancelledRun(kind, { cancelHangs: true });
    expect(await stopOf(recorded)).toMatchObject({ outcome: "failed" });
    expect(recorded.notes.at(-1)?.data.error).toBe("no answer within 300 ms");
  });

  it("a confirmation that never comes leaves the stop requested", async () => {
    const { fake, registry } = await start(
      kind,
      { cancelDelayMs: 60_000 },
      { confirm_timeout_ms: 150 },
    );
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    await waitUntil(() => recorded.remoteIds.length === 1, 5_000, "the submit");
    cancel(userCancel());
    await rejectionOf(result);
    expect(await stopOf(recorded)).toMatchObject({ outcome: "requested", confirmedAt: null });
    expect(fake.cancels).toHaveLength(1);
  });

  it("a cancel racing the work's own end is already_finished", async () => {
    const { fake, recorded } = await cancelledRun(kind, { completeOnCancel: true });
    expect(await stopOf(recorded)).toMatchObject({ outcome: "already_finished" });
    expect(fake.cancels).toHaveLength(1);
  });

  it("status polls that keep failing give up without a second submit, and cancel remotely", async () => {
    const { fake, registry } = await start(
      kind,
      { statusFails: true },
      { confirm_timeout_ms: 200 },
    );
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    expect(await rejectionOf(result)).toMatchObject({ retryable: false });
    expect(fake.submits).toHaveLength(1);
    // The status still fails, so the end is never seen: requested, not confirmed.
    expect(await stopOf(recorded)).toMatchObject({ why: "gave_up", outcome: "requested" });
    expect(fake.cancels).toHaveLength(1);
  });

  it("a shutdown sends the remote cancel too", async () => {
    const { fake, registry } = await start(kind);
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    await waitUntil(() => recorded.remoteIds.length === 1, 5_000, "the submit");
    cancel(new CancelCause("shutdown", "the instance is shutting down"));
    await rejectionOf(result);
    expect(await stopOf(recorded)).toMatchObject({ why: "shutdown", outcome: "confirmed" });
    expect(fake.cancels).toHaveLength(1);
  });

  it("a deadline sends the remote cancel too", async () => {
    const { fake, registry } = await start(kind);
    const [ctx] = withTimeout(background(), 100);
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    await rejectionOf(result);
    expect(await stopOf(recorded)).toMatchObject({ why: "deadline", outcome: "confirmed" });
    expect(fake.cancels).toHaveLength(1);
  });
});

describe("replicate specifics", () => {
  it("sends the job's remaining time as Cancel-After, bounded by the timeout", async () => {
    const [kind] = KINDS;
    if (kind === undefined) throw new Error("no replicate kind");
    const { fake, registry } = await start(kind, { completeAfterPolls: 1 }, { timeout_ms: 90_000 });
    const [ctx] = withCancelCause(background());
    await runOn(registry, "q", ctx, { model: kind.model, input: {} }).result;
    const header = String(fake.submits[0]?.["cancel-after"]);
    expect(header).toMatch(/^\d+s$/);
    expect(Number.parseInt(header, 10)).toBeGreaterThan(80);
    expect(Number.parseInt(header, 10)).toBeLessThanOrEqual(90);
  });

  it("follows the prediction's stream: text arrives live, and a cancel keeps what came", async () => {
    const [kind] = KINDS;
    if (kind === undefined) throw new Error("no replicate kind");
    const { fake, registry } = await start(kind, { stream: { tokens: 1_000, intervalMs: 10 } });
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    await waitUntil(() => recorded.progress.length >= 5, 5_000, "streamed text");
    cancel(userCancel());
    await rejectionOf(result);
    const last = recorded.progress.at(-1) as { text: string };
    expect(last.text.startsWith("t0 t1 t2 t3 t4 ")).toBe(true);
    expect(await stopOf(recorded)).toMatchObject({ outcome: "confirmed" });
    expect(fake.cancels).toHaveLength(1);
  });

  it("a stream that ends with done hands over to the status for the output", async () => {
    const [kind] = KINDS;
    if (kind === undefined) throw new Error("no replicate kind");
    const { registry } = await start(kind, { stream: { tokens: 3, intervalMs: 5 } });
    const [ctx] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "q", ctx, { model: kind.model, input: {} });
    expect(await result).toEqual(kind.output);
    expect(recorded.progress.at(-1)).toEqual({ text: "t0 t1 t2 " });
  });

  it("a model with a version posts to /predictions with that version", async () => {
    const [kind] = KINDS;
    if (kind === undefined) throw new Error("no replicate kind");
    const { fake, registry } = await start(kind, { completeAfterPolls: 1 });
    const [ctx] = withCancelCause(background());
    const version = "a".repeat(64);
    await runOn(registry, "q", ctx, { model: `owner/name:${version}`, input: { x: 1 } }).result;
    const submit = fake.server.requests.find((r) => r.method === "POST");
    expect(submit?.path).toBe("/v1/predictions");
    expect(submit?.body).toEqual({ version, input: { x: 1 } });
  });
});
