import type { Db } from "../db/connection.js";
import { type ClaimedDelivery, freezeBodies } from "../db/webhook-outbox.js";

/**
 * The body each claimed event sends: `{"type", "timestamp", "data"}`, `data`
 * the job object (plus the change's own facts, `cancel_to_stop_ms`). Made
 * once per job and change however many webhooks hear it, and frozen at the
 * first attempt so every retry sends the same bytes. Events whose job is
 * gone are left out (nothing to tell).
 */
export async function prepareBodies(
  db: Db,
  claimed: ClaimedDelivery[],
  renderJob: (jobId: string) => Promise<object | undefined>,
): Promise<Map<string, string>> {
  const bodies = new Map<string, string>();
  const fresh = new Map<string, ClaimedDelivery[]>();
  for (const d of claimed) {
    if (d.body !== null) bodies.set(d.eventId, d.body);
    else {
      const key = `${d.jobId} ${d.type} ${JSON.stringify(d.extra)}`;
      fresh.set(key, [...(fresh.get(key) ?? []), d]);
    }
  }
  for (const group of fresh.values()) {
    const first = group[0];
    if (first === undefined) continue;
    const job = await renderJob(first.jobId);
    if (job === undefined) continue;
    const body = JSON.stringify({
      type: first.type,
      timestamp: first.createdAt.toISOString(),
      data: { ...job, ...first.extra },
    });
    const frozen = await freezeBodies(
      db,
      group.map((d) => d.eventId),
      body,
    );
    for (const [id, text] of frozen) bodies.set(id, text);
  }
  return bodies;
}
