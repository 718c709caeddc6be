import { setTimeout as sleep } from "node:timers/promises";
import type { Agent } from "undici";
import type { WebhookConfig } from "../config.js";
import type { Db } from "../db/connection.js";
import { isDatabaseUnavailable, unavailableCode } from "../db/unavailable.js";
import { type FinishedAttempt, recordAttempts } from "../db/webhook-attempts.js";
import { type AttemptResult, type ClaimedDelivery, claimDeliveries } from "../db/webhook-outbox.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { createWakeup } from "../wakeup.js";
import { prepareBodies } from "./bodies.js";
import { ATTEMPT_TIMEOUT_MS, createDeliveryAgent, sendEvent } from "./send.js";

/** Retries stop this long after the event (SPEC.md section 3: 24 h). */
export const RETRY_WINDOW_MS = 24 * 3_600_000;
/** How long the loop lets a burst of endings gather before it claims their events. */
const COALESCE_MS = 20;
/** Attempts in flight at once to one webhook, per instance: a hanging receiver holds no more slots. */
const PER_WEBHOOK = 2;
/** No single wait between attempts is longer than this. */
const MAX_BACKOFF_MS = 3_600_000;

export interface WebhookLoopDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  config: WebhookConfig;
  /** The event's `data`: the job object as the API shows it; undefined if the job is gone. */
  renderJob(jobId: string): Promise<object | undefined>;
  /** Attempts in flight at once on this instance. */
  concurrency?: number;
}

export interface WebhookLoop {
  start(): void;
  /** An event may be due now (a job ended here): claim without waiting for the poll. */
  wake(): void;
  /** Stops claiming and aborts attempts in flight (their claims lapse; another attempt follows). */
  stop(): Promise<void>;
  inFlight(): number;
}

/** The wait before attempt `attempt + 1`: base × 2^(attempt−1), capped, with jitter in [½, 1]. */
export function backoffMs(attempt: number, baseMs: number, random = Math.random): number {
  const exp = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + random() * 0.5));
}

/**
 * Delivers the outbox, on every instance: a loop of its own with its own
 * concurrency and a 10 s limit per attempt, so a slow or dead receiver
 * delays nothing but its own events (never a cancel or a job's end). Each
 * claim holds its events past the attempt's timeout; an instance that dies
 * mid-attempt leaves them to be claimed again, so delivery is at least once.
 */
export function createWebhookLoop(deps: WebhookLoopDeps): WebhookLoop {
  const log = deps.logger.child({ component: "webhooks" });
  const concurrency = deps.concurrency ?? 8;
  const pollMs = Math.min(1_000, deps.config.retryBaseMs);
  const agent: Agent = createDeliveryAgent(deps.config);
  const attempts = new Set<AbortController>();
  const settled = new Set<Promise<void>>();
  /** Attempts in flight per webhook (claims leave a webhook at PER_WEBHOOK alone). */
  const busy = new Map<string, number>();
  let stopped = true;
  const wakeup = createWakeup();
  let loop: Promise<void> | undefined;

  /** Attempts whose answer is in, for the loop to record together on its next turn. */
  let finished: FinishedAttempt[] = [];

  async function attempt(
    d: ClaimedDelivery,
    body: string,
    controller: AbortController,
  ): Promise<void> {
    const timer = setTimeout(
      () => controller.abort(new Error("no answer in 10 s")),
      ATTEMPT_TIMEOUT_MS,
    );
    try {
      const sent = await sendEvent(
        { url: d.url, secret: d.secret, eventId: d.eventId, body },
        { agent, rules: deps.config, signal: controller.signal },
      );
      if (stopped && sent.outcome === "failed") return; // aborted by the stop: the claim lapses
      const retryAt = new Date(Date.now() + backoffMs(d.attempt, deps.config.retryBaseMs));
      const result: AttemptResult =
        sent.outcome === "failed"
          ? {
              ...sent,
              retryAt: retryAt.getTime() - d.createdAt.getTime() > RETRY_WINDOW_MS ? null : retryAt,
            }
          : sent;
      finished.push({ delivery: d, result });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Records what finished since the last turn; if that fails, the claims lapse and the events come round again. */
  async function recordFinished(): Promise<void> {
    const batch = finished;
    finished = [];
    const counted = await recordAttempts(deps.db, batch).catch((err: unknown) => {
      if (isDatabaseUnavailable(err))
        log.warn({ code: unavailableCode(err) }, "webhook attempts not recorded");
      else log.error({ err }, "recording webhook attempts failed");
      return [];
    });
    for (const { delivery: d, result } of counted) {
      const outcome =
        result.outcome === "failed"
          ? result.retryAt === null
            ? "gave_up"
            : "retry"
          : result.outcome;
      deps.metrics.webhookDeliveries.inc({ outcome });
      const line = { event_id: d.eventId, job_id: d.jobId, attempt: d.attempt, outcome };
      if (result.outcome === "delivered") log.debug(line, "webhook delivered");
      else
        log.warn(
          {
            ...line,
            status_code: result.statusCode,
            error: "error" in result ? result.error : undefined,
          },
          "webhook not delivered",
        );
    }
  }

  async function run(): Promise<void> {
    while (!stopped) {
      await recordFinished();
      const free = concurrency - attempts.size;
      let claimed: ClaimedDelivery[] = [];
      if (free > 0) {
        claimed = await claimDeliveries(deps.db, {
          limit: free,
          holdMs: ATTEMPT_TIMEOUT_MS + 5_000,
          perWebhook: PER_WEBHOOK,
          busy,
        }).catch((err: unknown) => {
          if (isDatabaseUnavailable(err))
            log.warn({ code: unavailableCode(err) }, "webhook claim skipped");
          else log.error({ err }, "webhook claim failed");
          return [];
        });
      }
      // If the bodies cannot be made now, the claims lapse and the events come round again.
      const bodies = await prepareBodies(deps.db, claimed, deps.renderJob).catch((err: unknown) => {
        log.warn({ err }, "webhook bodies not ready; the events will be claimed again");
        return new Map<string, string>();
      });
      for (const d of claimed) {
        const body = bodies.get(d.eventId);
        if (body === undefined) continue;
        const controller = new AbortController();
        attempts.add(controller);
        busy.set(d.webhookId, (busy.get(d.webhookId) ?? 0) + 1);
        const done = attempt(d, body, controller).finally(() => {
          attempts.delete(controller);
          const left = (busy.get(d.webhookId) ?? 1) - 1;
          if (left > 0) busy.set(d.webhookId, left);
          else busy.delete(d.webhookId);
          settled.delete(done);
          wakeup.notify();
        });
        settled.add(done);
      }
      if (stopped || (free > 0 && claimed.length === free)) continue;
      const waited = performance.now();
      await wakeup.wait(pollMs);
      // Woken by a job's end: let the burst it belongs to (a cancel's stop, a bulk
      // cancel) land first, then claim it all together: fewer round trips, and the
      // cancel's own writes never queue behind its webhooks.
      if (!stopped && performance.now() - waited < pollMs) await sleep(COALESCE_MS);
    }
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      loop = run();
    },
    wake: wakeup.notify,
    async stop() {
      stopped = true;
      wakeup.notify();
      for (const controller of attempts) controller.abort(new Error("shutting down"));
      await loop;
      await Promise.allSettled([...settled]);
      await recordFinished();
      await agent.close();
    },
    inFlight: () => attempts.size,
  };
}
