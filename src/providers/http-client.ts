import { Agent, type Dispatcher, request } from "undici";
import { ProviderError, statusError } from "./errors.js";

/**
 * The one undici Agent every provider request goes through: keep-alive
 * pools per origin, a connect timeout, and header/body timeouts as a
 * backstop (each provider's timeout_ms and stall_ms are the real bounds).
 * Aborting a request's signal destroys its socket.
 */
export function createHttpAgent(): Agent {
  return new Agent({
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    connect: { timeout: 10_000 },
    headersTimeout: 15 * 60_000,
    bodyTimeout: 15 * 60_000,
  });
}

/** Largest response body read into memory. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface SendOptions {
  agent: Dispatcher;
  signal: AbortSignal;
  method: "GET" | "POST" | "PUT";
  url: string;
  headers?: Record<string, string>;
  json?: unknown;
}

export async function send(options: SendOptions): Promise<Dispatcher.ResponseData> {
  const headers: Record<string, string> = { accept: "application/json", ...options.headers };
  let body: string | undefined;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  return request(options.url, {
    dispatcher: options.agent,
    method: options.method,
    headers,
    body,
    signal: options.signal,
  });
}

/**
 * Throws the status's ProviderError for a non-2xx response, after reading a
 * little of its body for the message and destroying the rest.
 */
export async function ensureOk(provider: string, res: Dispatcher.ResponseData): Promise<void> {
  if (res.statusCode >= 200 && res.statusCode < 300) return;
  let detail = "";
  try {
    for await (const chunk of res.body) {
      detail += String(chunk);
      if (detail.length > 1024) break;
    }
  } catch {
    // The status is what matters; a broken error body adds nothing.
  } finally {
    res.body.destroy();
  }
  const retryAfter = res.headers["retry-after"];
  throw statusError(
    provider,
    res.statusCode,
    Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
    detail,
  );
}

/** Reads a whole body, reporting each chunk as activity; destroys it on any failure. */
export async function readText(
  provider: string,
  res: Dispatcher.ResponseData,
  activity: () => void,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      activity();
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        throw new ProviderError(
          "bad_response",
          `${provider}: response larger than ${MAX_BODY_BYTES} bytes`,
        );
      }
      chunks.push(chunk as Buffer);
    }
  } finally {
    res.body.destroy();
  }
  return Buffer.concat(chunks).toString("utf8");
}

export async function readJson(
  provider: string,
  res: Dispatcher.ResponseData,
  activity: () => void,
): Promise<unknown> {
  const text = await readText(provider, res, activity);
  try {
    return JSON.parse(text);
  } catch {
    throw new ProviderError(
      "bad_response",
      `${provider}: response is not JSON: ${text.slice(0, 200)}`,
    );
  }
}
