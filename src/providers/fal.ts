import type { Dispatcher } from "undici";
import type { ProviderConfigOf } from "./config.js";
import { ProviderError } from "./errors.js";
import { ensureOk, readJson, send } from "./http-client.js";
import { type CancelAnswer, type RemoteState, remoteQueueProvider } from "./remote-queue.js";
import type { Provider } from "./types.js";

interface FalRequest {
  id: string;
  statusUrl: string;
  responseUrl: string;
  cancelUrl: string;
}

/**
 * `fal` (fal's queue API, fal.ai/docs "Queue"): `POST {base_url}/{model}`
 * with the input as the body and `Authorization: Key …` → `request_id`,
 * `status_url`, `response_url`, `cancel_url`. Poll the status URL
 * (`IN_QUEUE`, `IN_PROGRESS`, `COMPLETED`) until `COMPLETED`, then `GET` the
 * response URL for the output. Cancel: `PUT` the cancel URL → 202
 * `CANCELLATION_REQUESTED`, 400 `ALREADY_COMPLETED`, 404 `NOT_FOUND`. The
 * work has ended when the status shows `COMPLETED` or the request is gone
 * (404). fal reports no billed time: usage is wall clock.
 */
export function falProvider(
  name: string,
  config: ProviderConfigOf<"fal">,
  agent: Dispatcher,
): Provider {
  const base = config.base_url.replace(/\/+$/, "");
  const headers: Record<string, string> = { ...config.headers };
  if (config.api_key) headers.authorization = `Key ${config.api_key}`;
  const json = async (
    signal: AbortSignal,
    method: "GET" | "POST",
    url: string,
    activity: () => void,
    body?: unknown,
  ) => {
    const res = await send({ agent, signal, method, url, headers, json: body });
    await ensureOk(name, res);
    return readJson(name, res, activity);
  };
  /** A URL fal gave for the request, if it is on the configured host; else the documented path. */
  const onBase = (given: unknown, fallback: string) =>
    typeof given === "string" &&
    URL.canParse(given) &&
    new URL(given).origin === new URL(base).origin
      ? given
      : fallback;

  return remoteQueueProvider<FalRequest>(name, config, {
    async submit(exec, signal) {
      if (!/^[\w.-]+\/[\w.-]+(\/[\w.-]+)*$/.test(exec.model)) {
        throw new ProviderError(
          "provider_rejected",
          `${name}: model must be an app id such as fal-ai/flux/dev`,
        );
      }
      const body = (await json(
        signal,
        "POST",
        `${base}/${exec.model}`,
        exec.activity,
        exec.input,
      )) as FalSubmitted;
      if (typeof body?.request_id !== "string" || body.request_id === "") {
        throw new ProviderError("bad_response", `${name}: the queue returned no request_id`);
      }
      // fal's docs: the request URLs use the app id without the endpoint path.
      const app = exec.model.split("/").slice(0, 2).join("/");
      const at = `${base}/${app}/requests/${encodeURIComponent(body.request_id)}`;
      const handle: FalRequest = {
        id: body.request_id,
        statusUrl: onBase(body.status_url, `${at}/status`),
        responseUrl: onBase(body.response_url, at),
        cancelUrl: onBase(body.cancel_url, `${at}/cancel`),
      };
      return {
        id: handle.id,
        handle,
        state: { status: "IN_QUEUE", ended: false, succeeded: false },
      };
    },
    async status(req, signal, activity): Promise<RemoteState> {
      const res = await send({ agent, signal, method: "GET", url: req.statusUrl, headers });
      if (res.statusCode === 404) {
        res.body.destroy();
        return { status: "NOT_FOUND", ended: true, succeeded: false };
      }
      await ensureOk(name, res);
      const body = (await readJson(name, res, activity)) as { status?: string };
      const status = typeof body?.status === "string" ? body.status : "UNKNOWN";
      return { status, ended: status === "COMPLETED", succeeded: status === "COMPLETED" };
    },
    endAfterCancel: () => "confirmed",
    result: (req, _state, exec) => json(exec.ctx.signal, "GET", req.responseUrl, exec.activity),
    async cancel(req, signal): Promise<CancelAnswer> {
      const res = await send({ agent, signal, method: "PUT", url: req.cancelUrl, headers });
      if (res.statusCode === 400 || res.statusCode === 404) {
        res.body.destroy(); // ALREADY_COMPLETED or NOT_FOUND: nothing left running
        return "already_finished";
      }
      await ensureOk(name, res);
      res.body.destroy();
      return "requested";
    },
  });
}

interface FalSubmitted {
  request_id?: string;
  status_url?: string;
  response_url?: string;
  cancel_url?: string;
}
