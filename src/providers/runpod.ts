import type { Dispatcher } from "undici";
import type { ProviderConfigOf } from "./config.js";
import { ProviderError } from "./errors.js";
import { ensureOk, readJson, send } from "./http-client.js";
import { type RemoteState, remainingMs, remoteQueueProvider } from "./remote-queue.js";
import type { Provider } from "./types.js";

/** RunPod serverless job statuses that mean the work ended (docs: "Job status"). */
const ENDED = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]);

/**
 * `runpod` (RunPod serverless, docs.runpod.io "Send requests to an endpoint"):
 * `POST {base_url}/run` `{"input", "policy": {"executionTimeout"}}` → `{id,
 * status}`; `GET /status/{id}`; `POST /cancel/{id}`. The job's remaining time
 * goes as `policy.executionTimeout` (ms), so RunPod stops the work itself if
 * every quench instance dies. `executionTime` (ms) is the billed time.
 */
export function runpodProvider(
  name: string,
  config: ProviderConfigOf<"runpod">,
  agent: Dispatcher,
): Provider {
  const base = config.base_url.replace(/\/+$/, "");
  const headers: Record<string, string> = { ...config.headers };
  if (config.api_key) headers.authorization = `Bearer ${config.api_key}`;
  const call = async (
    signal: AbortSignal,
    method: "GET" | "POST",
    path: string,
    activity: () => void,
    json?: unknown,
  ) => {
    const res = await send({ agent, signal, method, url: `${base}${path}`, headers, json });
    await ensureOk(name, res);
    return toState((await readJson(name, res, activity)) as RunpodJob);
  };
  const path = (id: string, verb: string) => `/${verb}/${encodeURIComponent(id)}`;

  return remoteQueueProvider<string>(name, config, {
    async submit(exec, signal) {
      const timeout = remainingMs(exec);
      const state = await call(signal, "POST", "/run", exec.activity, {
        input: runInput(exec.model, exec.input),
        ...(timeout === undefined ? {} : { policy: { executionTimeout: timeout } }),
      });
      const id = state.id;
      if (id === undefined)
        throw new ProviderError("bad_response", `${name}: /run returned no job id`);
      return { id, handle: id, state };
    },
    status: (id, signal, activity) => call(signal, "GET", path(id, "status"), activity),
    async cancel(id, signal) {
      const state = await call(signal, "POST", path(id, "cancel"), () => {}, {});
      return state.ended && state.status !== "CANCELLED" ? "already_finished" : "requested";
    },
  });
}

function toState(job: RunpodJob): RemoteState & { id?: string } {
  const status = typeof job?.status === "string" ? job.status : "UNKNOWN";
  return {
    ...(typeof job?.id === "string" && job.id !== "" ? { id: job.id } : {}),
    status,
    ended: ENDED.has(status),
    succeeded: status === "COMPLETED",
    output: job?.output ?? null,
    ...(job?.error === undefined ? {} : { error: String(job.error) }),
    ...(typeof job?.executionTime === "number" ? { billedMs: job.executionTime } : {}),
  };
}

function runInput(model: string, input: unknown): Record<string, unknown> {
  return typeof input === "object" && input !== null && !Array.isArray(input)
    ? { ...input, model }
    : { model, input };
}

interface RunpodJob {
  id?: string;
  status?: string;
  output?: unknown;
  error?: unknown;
  executionTime?: number;
}
