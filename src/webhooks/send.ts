import { Webhook } from "standardwebhooks";
import { Agent, request } from "undici";
import type { AttemptResult } from "../db/webhook-outbox.js";
import { checkUrlShape, guardedLookup, type UrlRules } from "./url-safety.js";

/** One attempt may take this long, connect to last byte (SPEC.md section 3: 10 s). */
export const ATTEMPT_TIMEOUT_MS = 10_000;

/**
 * The agent deliveries go through: its sockets resolve names with the URL
 * rules applied at connect time. Redirects are never followed (undici's
 * `request` follows none unless told to), so a 3xx is a failed attempt.
 */
export function createDeliveryAgent(rules: UrlRules): Agent {
  return new Agent({
    connect: { lookup: guardedLookup(rules), timeout: ATTEMPT_TIMEOUT_MS },
    headersTimeout: ATTEMPT_TIMEOUT_MS,
    bodyTimeout: ATTEMPT_TIMEOUT_MS,
    keepAliveTimeout: 4_000,
  });
}

export type SendResult =
  | Exclude<AttemptResult, { outcome: "failed" }>
  | { outcome: "failed"; statusCode: number | null; error: string };

/**
 * POSTs one signed event. The signature is the Standard Webhooks scheme,
 * made by the `standardwebhooks` package: `webhook-id` is the event's id (the
 * same on every retry), `webhook-timestamp` this attempt's time in seconds,
 * `webhook-signature` `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
 * Never throws: every way an attempt can go wrong is a result.
 */
export async function sendEvent(
  target: { url: string; secret: string; eventId: string; body: string },
  /** `signal` ends the attempt: the caller's per-attempt timeout, or a shutdown. */
  options: { agent: Agent; rules: UrlRules; signal: AbortSignal },
): Promise<SendResult> {
  try {
    checkUrlShape(target.url, options.rules);
    const now = new Date();
    const signature = new Webhook(target.secret).sign(target.eventId, now, target.body);
    const res = await request(target.url, {
      method: "POST",
      body: target.body,
      dispatcher: options.agent,
      signal: options.signal,
      headers: {
        "content-type": "application/json",
        "user-agent": "quench-webhooks",
        "webhook-id": target.eventId,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": signature,
      },
    });
    await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
    if (res.statusCode >= 200 && res.statusCode < 300) {
      return { outcome: "delivered", statusCode: res.statusCode };
    }
    if (res.statusCode === 410) return { outcome: "gone", statusCode: 410 };
    return { outcome: "failed", statusCode: res.statusCode, error: `answered ${res.statusCode}` };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { outcome: "failed", statusCode: null, error: message };
  }
}
