import { setTimeout as sleep } from "node:timers/promises";
import type { Dispatcher } from "undici";
import { withoutCancel, withTimeout } from "../context/context.js";
import type { ProviderConfigOf } from "./config.js";
import { networkError, ProviderError } from "./errors.js";
import { ensureOk, readJson, send } from "./http-client.js";
import type { ExecutionCall, Provider } from "./types.js";

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]);

/** Consecutive failed status polls tolerated before giving up on the remote job. */
const MAX_POLL_FAILURES = 5;

/**
 * `runpod`: `POST {base_url}/run` → remote id; poll `GET /status/{id}` with
 * an abortable sleep. Closing our connection does not stop a remote queue, so
 * whenever the attempt ends after submitting without a terminal remote status
 * — cancelled, timed out, stalled, or given up — it sends
 * `POST /cancel/{id}` outside the cancelled context (`withoutCancel`) with its
 * own short timeout, and records that it did. Failures after submitting are
 * never retried: a retry would submit the work twice.
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
    json?: unknown,
  ) => {
    const res = await send({ agent, signal, method, url: `${base}${path}`, headers, json });
    await ensureOk(name, res);
    return res;
  };

  async function remoteCancel(exec: ExecutionCall, id: string, why: string): Promise<void> {
    const [ctx, release] = withTimeout(withoutCancel(exec.ctx), config.cancel_timeout_ms);
    const started = Date.now();
    try {
      const res = await call(ctx.signal, "POST", `/cancel/${encodeURIComponent(id)}`, {});
      const body = (await readJson(name, res, () => {})) as { status?: string };
      exec.note("remote_cancel_sent", {
        provider: name,
        remote_id: id,
        why,
        ok: true,
        status: body?.status ?? null,
        ms: Date.now() - started,
      });
    } catch (err) {
      exec.note("remote_cancel_sent", {
        provider: name,
        remote_id: id,
        why,
        ok: false,
        error:
          ctx.err !== undefined
            ? `no answer within ${config.cancel_timeout_ms} ms`
            : networkError(name, err).message,
        ms: Date.now() - started,
      });
    } finally {
      release();
    }
  }

  return {
    name,
    config,
    async attempt(exec) {
      const signal = exec.ctx.signal;
      const submitted = (await readJson(
        name,
        await call(signal, "POST", "/run", { input: runInput(exec.model, exec.input) }),
        exec.activity,
      )) as RunpodStatus;
      if (typeof submitted?.id !== "string" || submitted.id === "") {
        throw new ProviderError("bad_response", `${name}: /run returned no job id`);
      }
      const id = submitted.id;
      exec.remoteId(id);
      let status = submitted;
      let failures = 0;
      try {
        while (!TERMINAL.has(status.status ?? "")) {
          await sleep(config.poll_ms, undefined, { signal });
          try {
            const res = await call(signal, "GET", `/status/${encodeURIComponent(id)}`);
            status = (await readJson(name, res, exec.activity)) as RunpodStatus;
            failures = 0;
          } catch (err) {
            const failure = networkError(name, err);
            if (signal.aborted || !failure.retryable || ++failures >= MAX_POLL_FAILURES) throw err;
          }
        }
      } catch (err) {
        const reason = signal.reason as { code?: unknown } | undefined;
        const why = !signal.aborted
          ? "gave_up"
          : typeof reason?.code === "string"
            ? reason.code
            : "aborted";
        await remoteCancel(exec, id, why);
        if (signal.aborted) throw err;
        throw notRetryable(networkError(name, err));
      }
      if (status.status === "COMPLETED") return status.output ?? null;
      throw new ProviderError(
        "remote_failed",
        `${name}: remote job ${id} ended ${status.status}${status.error ? `: ${String(status.error).slice(0, 300)}` : ""}`,
      );
    },
  };
}

function runInput(model: string, input: unknown): Record<string, unknown> {
  return typeof input === "object" && input !== null && !Array.isArray(input)
    ? { ...input, model }
    : { model, input };
}

function notRetryable(err: ProviderError): ProviderError {
  return err.retryable
    ? new ProviderError(err.code, err.message, { status: err.status, cause: err })
    : err;
}

interface RunpodStatus {
  id?: string;
  status?: string;
  output?: unknown;
  error?: unknown;
}
