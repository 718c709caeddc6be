import type { QuenchClient } from "../../client/client.js";
import type { Job } from "../../client/types.js";
import { EXIT } from "../errors.js";
import { createLiveView, type Screen } from "../live-view.js";

const STOP_ACK_WAIT_MS = 3_000;

/**
 * Follows job `id` to its end: a live view, or with `json` one line per
 * stream event (`{"event", "data"}`) and the final job last. Exit 0 only
 * when the job completed.
 */
export async function followJob(
  client: QuenchClient,
  id: string,
  o: { json: boolean; screen: Screen; signal?: AbortSignal },
): Promise<number> {
  const view = o.json ? undefined : createLiveView(o.screen);
  let final = await client.follow(id, {
    signal: o.signal,
    onEvent: (event) => {
      if (o.json) o.screen.write(`${JSON.stringify(event)}\n`);
      else view?.onEvent(event);
    },
  });
  final = await withStopTime(client, final);
  if (o.json) o.screen.write(`${JSON.stringify({ event: "final", data: final })}\n`);
  else view?.close(final);
  return final.status === "completed" ? EXIT.ok : EXIT.jobNotCompleted;
}

/**
 * A cancelled job's `end` can arrive just before its runner records
 * `stopped_at`; wait briefly for it so the view can say how fast it stopped.
 */
async function withStopTime(client: QuenchClient, job: Job): Promise<Job> {
  const deadline = Date.now() + STOP_ACK_WAIT_MS;
  let current = job;
  while (
    current.status === "cancelled" &&
    current.started_at !== null &&
    current.stopped_at === null &&
    Date.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    current = await client.job(job.id);
  }
  return current;
}
