import pMap from "p-map";
import type { FakeServer } from "../test/fakes/fake-server.js";
import { runpodServer } from "../test/fakes/providers.js";
import { falServer, replicateServer } from "../test/fakes/remote-queues.js";
import { benchDatabase, deadline, startBenchRunner, startStreamServer } from "./cancel.js";
import { startBenchApi } from "./http.js";
import { type Stats, summarize } from "./stats.js";

export interface RemoteBenchResult {
  driver: string;
  jobs: number;
  /** Per kind: POST /jobs/:id/cancel sent → the fake provider received the cancel call (ms). */
  kinds: { kind: string; toCancelCall: Stats; toResponse: Stats }[];
}

/**
 * A cancel's path to a remote-queue provider: `jobs` jobs per kind wait in
 * loopback fakes of RunPod, Replicate and fal (in this process); each is
 * cancelled through `POST /jobs/:id/cancel`, timed to the moment the fake
 * receives the provider's own cancel call. The HTTP answer does not wait for
 * that call nor for its confirmation.
 */
export async function remoteBench(jobs = 200): Promise<RemoteBenchResult> {
  const stream = await startStreamServer();
  const runpod = await runpodServer();
  const replicate = await replicateServer();
  const fal = await falServer();
  const fakes: Record<string, { server: FakeServer; model: string; isCancel: RegExp }> = {
    runpod: { server: runpod.server, model: "sdxl", isCancel: /^\/cancel\/(.+)$/ },
    replicate: {
      server: replicate.server,
      model: "owner/model",
      isCancel: /^\/v1\/predictions\/([^/]+)\/cancel$/,
    },
    fal: { server: fal.server, model: "fal-ai/flux/dev", isCancel: /\/requests\/([^/]+)\/cancel$/ },
  };
  const queue = { poll_ms: 500, max_concurrency: jobs, stall_ms: 600_000 };
  const { database, drop } = await benchDatabase();
  const parts = await startBenchRunner(database.db, stream.url, jobs * 3, {
    runpod: { kind: "runpod", base_url: runpod.server.url, ...queue },
    replicate: {
      kind: "replicate",
      base_url: `${replicate.server.url}/v1`,
      api_token: "t",
      ...queue,
    },
    fal: { kind: "fal", base_url: fal.server.url, api_key: "k", ...queue },
  });
  const { call, client, server } = await startBenchApi(database, parts);
  const result: RemoteBenchResult = { driver: database.driver, jobs, kinds: [] };
  try {
    for (const [kind, fake] of Object.entries(fakes)) {
      const ids = await pMap(
        Array.from({ length: jobs }),
        async () =>
          (
            await call("POST", "/jobs", {
              executions: [{ key: "gen", provider: kind, model: fake.model, input: {} }],
            })
          ).id,
        { concurrency: 16 },
      );
      // Every job submitted remotely: its remote id is known.
      const remote = new Map<string, string>();
      await deadline(
        (async () => {
          while (remote.size < ids.length) {
            for (const id of ids) {
              if (remote.has(id)) continue;
              const job = await call("GET", `/jobs/${id}`);
              const remoteId = job.executions?.[0]?.remote_id;
              if (remoteId) remote.set(id, remoteId);
            }
          }
        })(),
        120_000,
        `not every ${kind} job was submitted`,
      );
      const toCancelCall: number[] = [];
      const toResponse: number[] = [];
      for (const id of ids) {
        const remoteId = remote.get(id) ?? "";
        const seen = () =>
          fake.server.requests.find((r) => fake.isCancel.exec(r.path)?.[1] === remoteId);
        const received = new Promise<number>((resolve) => {
          void fake.server
            .waitFor(() => seen() !== undefined, 10_000, `${kind} cancel call`)
            .then(() => resolve(seen()?.openedAt ?? Number.NaN));
        });
        // The fakes stamp requests with this process's performance.now().
        const t0 = performance.now();
        await call("POST", `/jobs/${id}/cancel`, {});
        toResponse.push(performance.now() - t0);
        toCancelCall.push((await received) - t0);
      }
      result.kinds.push({
        kind,
        toCancelCall: summarize(toCancelCall),
        toResponse: summarize(toResponse),
      });
    }
    return result;
  } finally {
    await parts.close();
    await new Promise((resolve) => server.close(resolve));
    await client.close();
    for (const f of [runpod.server, replicate.server, fal.server]) await f.close();
    stream.stop();
    await drop();
  }
}
