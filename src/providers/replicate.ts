import { createParser } from "eventsource-parser";
import type { Dispatcher } from "undici";
import type { ProviderConfigOf } from "./config.js";
import { ProviderError } from "./errors.js";
import { ensureOk, readJson, send } from "./http-client.js";
import { type RemoteState, remainingMs, remoteQueueProvider } from "./remote-queue.js";
import type { ExecutionCall, Provider } from "./types.js";

/** Prediction statuses that mean the work ended (Replicate HTTP API, "Prediction status"). */
const ENDED = new Set(["succeeded", "failed", "canceled", "aborted"]);

/**
 * `replicate` (Replicate's HTTP API, replicate.com/docs/reference/http):
 * an execution's `model` is `owner/name` (`POST /models/{owner}/{name}/predictions`,
 * the model's latest version) or `owner/name:version` (`POST /predictions`
 * with `version`); the body is `{"input"}`. The job's remaining time goes as
 * the `Cancel-After` header (Replicate's prediction deadline, in seconds), so
 * Replicate cancels the prediction itself if every quench instance dies.
 * Poll `GET /predictions/{id}`; cancel `POST /predictions/{id}/cancel`.
 * `metrics.predict_time` (seconds) is the billed time.
 */
export function replicateProvider(
  name: string,
  config: ProviderConfigOf<"replicate">,
  agent: Dispatcher,
): Provider {
  const base = config.base_url.replace(/\/+$/, "");
  const headers: Record<string, string> = {
    ...config.headers,
    authorization: `Bearer ${config.api_token}`,
  };
  const call = async (
    signal: AbortSignal,
    method: "GET" | "POST",
    path: string,
    activity: () => void,
    options: { json?: unknown; headers?: Record<string, string> } = {},
  ) => {
    const res = await send({
      agent,
      signal,
      method,
      url: `${base}${path}`,
      headers: { ...headers, ...options.headers },
      json: options.json,
    });
    await ensureOk(name, res);
    return toState((await readJson(name, res, activity)) as Prediction);
  };
  const prediction = (id: string) => `/predictions/${encodeURIComponent(id)}`;

  return remoteQueueProvider<Handle>(name, config, {
    async submit(exec, signal) {
      const model = /^([\w.-]+)\/([\w.-]+)(?::([0-9a-f]{64}|[\w.-]+))?$/i.exec(exec.model);
      if (model === null) {
        throw new ProviderError(
          "provider_rejected",
          `${name}: model must be owner/name or owner/name:version, got ${exec.model.slice(0, 100)}`,
        );
      }
      const [, owner = "", model_ = "", version] = model;
      const left = remainingMs(exec);
      const state = await call(
        signal,
        "POST",
        version === undefined
          ? `/models/${encodeURIComponent(owner)}/${encodeURIComponent(model_)}/predictions`
          : "/predictions",
        exec.activity,
        {
          json: version === undefined ? { input: exec.input } : { version, input: exec.input },
          headers: left === undefined ? {} : { "cancel-after": `${Math.ceil(left / 1000)}s` },
        },
      );
      if (state.id === undefined) {
        throw new ProviderError("bad_response", `${name}: the prediction has no id`);
      }
      return { id: state.id, handle: { id: state.id, stream: state.stream }, state };
    },
    status: (h, signal, activity) => call(signal, "GET", prediction(h.id), activity),
    async follow(h, exec) {
      if (h.stream === undefined) return undefined;
      const res = await send({
        agent,
        signal: exec.ctx.signal,
        method: "GET",
        url: h.stream,
        headers: { ...headers, accept: "text/event-stream", "cache-control": "no-store" },
      });
      await ensureOk(name, res);
      await followStream(res, exec);
      return undefined; // the status poll that follows reads the final state and output
    },
    async cancel(h, signal) {
      const state = await call(signal, "POST", `${prediction(h.id)}/cancel`, () => {});
      return state.ended && state.succeeded ? "already_finished" : "requested";
    },
  });
}

interface Handle {
  id: string;
  /** `urls.stream`: the prediction's output as server-sent events, when the model streams. */
  stream: string | undefined;
}

/**
 * Reads Replicate's prediction stream (`output` events carry text, `error`
 * and `done` end it), reporting the text so far as progress, so a cancel
 * keeps it as partial output.
 */
async function followStream(res: Dispatcher.ResponseData, exec: ExecutionCall): Promise<void> {
  let text = "";
  let ended = false;
  const parser = createParser({
    maxBufferSize: 1024 * 1024,
    onEvent(event) {
      if (event.event === "output") {
        text += event.data;
        exec.progress({ text });
      } else if (event.event === "done" || event.event === "error") {
        ended = true;
      }
    },
  });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      exec.activity();
      parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
      if (ended) break;
    }
  } catch (err) {
    if (exec.ctx.signal.aborted) throw err;
    // A broken stream is not the prediction's end: polling carries on.
  } finally {
    res.body.destroy();
  }
}

function toState(p: Prediction): RemoteState & { id?: string; stream?: string } {
  const status = typeof p?.status === "string" ? p.status : "unknown";
  return {
    ...(typeof p?.id === "string" && p.id !== "" ? { id: p.id } : {}),
    ...(typeof p?.urls?.stream === "string" && URL.canParse(p.urls.stream)
      ? { stream: p.urls.stream }
      : {}),
    status,
    ended: ENDED.has(status),
    succeeded: status === "succeeded",
    output: p?.output ?? null,
    ...(p?.error == null ? {} : { error: String(p.error) }),
    ...(typeof p?.metrics?.predict_time === "number"
      ? { billedMs: Math.round(p.metrics.predict_time * 1000) }
      : {}),
  };
}

interface Prediction {
  id?: string;
  status?: string;
  output?: unknown;
  error?: unknown;
  urls?: { get?: string; cancel?: string; stream?: string };
  metrics?: { predict_time?: number };
}
