import { createParser } from "eventsource-parser";
import type { Dispatcher } from "undici";
import type { ProviderConfig } from "./config.js";
import { ProviderError } from "./errors.js";
import { ensureOk, send } from "./http-client.js";
import type { ExecutionCall, Provider } from "./types.js";

export interface ChatOutput {
  text: string;
  usage: Record<string, unknown> | null;
  finish_reason: string | null;
}

/** Longest SSE event we buffer: far above any real chunk, far below memory trouble. */
const MAX_EVENT_CHARS = 1024 * 1024;

/**
 * `openai`: `POST {base_url}/chat/completions` with `stream: true`. The job's
 * `input` is the request body (`messages`, `max_tokens`, …); `model` and
 * `stream` are ours. Output `{"text", "usage", "finish_reason"}`; the text
 * streamed so far is reported as progress, so a cancel keeps it.
 */
export interface ChatEndpoint {
  baseUrl: string;
  apiKey?: string | undefined;
  headers?: Record<string, string>;
}

export function openaiProvider(
  name: string,
  config: ProviderConfig,
  endpoint: ChatEndpoint,
  agent: Dispatcher,
): Provider {
  const url = `${endpoint.baseUrl.replace(/\/+$/, "")}/chat/completions`;
  const headers: Record<string, string> = { accept: "text/event-stream", ...endpoint.headers };
  if (endpoint.apiKey) headers.authorization = `Bearer ${endpoint.apiKey}`;

  return {
    name,
    config,
    async attempt(call) {
      const input = call.input;
      if (typeof input !== "object" || input === null || Array.isArray(input)) {
        throw new ProviderError(
          "provider_rejected",
          `${name}: input must be a chat request object`,
        );
      }
      const res = await send({
        agent,
        signal: call.ctx.signal,
        method: "POST",
        url,
        headers,
        json: {
          ...input,
          model: call.model,
          stream: true,
          stream_options: { include_usage: true },
        },
      });
      call.activity();
      await ensureOk(name, res);
      return readStream(name, res, call);
    },
  };
}

async function readStream(
  name: string,
  res: Dispatcher.ResponseData,
  call: ExecutionCall,
): Promise<ChatOutput> {
  const output: ChatOutput = { text: "", usage: null, finish_reason: null };
  let done = false;
  let failure: ProviderError | undefined;
  const parser = createParser({
    maxBufferSize: MAX_EVENT_CHARS,
    onEvent(event) {
      if (done || failure) return;
      if (event.data === "[DONE]") {
        done = true;
        return;
      }
      let chunk: StreamChunk;
      try {
        chunk = JSON.parse(event.data) as StreamChunk;
      } catch {
        failure = new ProviderError("bad_response", `${name}: stream event is not JSON`);
        return;
      }
      if (chunk.error) {
        failure = new ProviderError(
          "provider_error",
          `${name}: ${chunk.error.message ?? "stream error"}`,
        );
        return;
      }
      const choice = chunk.choices?.[0];
      const delta = choice?.delta?.content;
      if (typeof delta === "string" && delta !== "") {
        output.text += delta;
        call.progress({ text: output.text });
      }
      if (choice?.finish_reason) output.finish_reason = choice.finish_reason;
      if (chunk.usage) output.usage = chunk.usage;
    },
    onError(err) {
      failure = new ProviderError("bad_response", `${name}: unreadable stream: ${err.message}`);
    },
  });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      call.activity();
      parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
      if (failure) throw failure;
      if (done) break;
    }
  } finally {
    res.body.destroy();
  }
  if (!done && output.finish_reason === null) {
    throw new ProviderError("bad_response", `${name}: stream ended before it finished`);
  }
  return output;
}

interface StreamChunk {
  choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: Record<string, unknown>;
  error?: { message?: string };
}
