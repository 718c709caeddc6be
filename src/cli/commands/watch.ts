import type { QuenchClient } from "../../client/client.js";
import type { Job } from "../../client/types.js";
import { EXIT } from "../errors.js";
import { createLiveView, type Screen } from "../live-view.js";

const STOP_ACK_WAIT_MS = 3_000;

/**
 * Follows job `id` to its end: a live view, or with `json` one line per
 * stream event (`{"event", "data"}`) and the final job last. Exit 0 only
 * when the job completed. With `keys` (a terminal): `c` asks to cancel the
 * job, `y` confirms, any other key keeps it running; `q` stops watching
 * (exit 0) and leaves the job running.
 */
export async function followJob(
  client: QuenchClient,
  id: string,
  o: {
    json: boolean;
    screen: Screen;
    signal?: AbortSignal;
    keys?: ((signal: AbortSignal) => AsyncIterable<string>) | undefined;
  },
): Promise<number> {
  const view = o.json ? undefined : createLiveView(o.screen);
  const quit = new AbortController();
  const watching = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, quit.signal]) : quit.signal;
  if (view !== undefined && o.keys !== undefined) {
    view.note("c cancel the job · q stop watching");
    void listenForKeys(o.keys(watching.signal), {
      ask: () =>
        view.note(`cancel job ${id.slice(0, 8)}? y cancels it, any other key keeps it running`),
      confirm: async () => {
        view.note(`cancelling job ${id.slice(0, 8)}…`);
        try {
          await client.cancel(id, { reason: "cancelled from quench watch" });
          view.note("");
        } catch (err) {
          view.note(`could not cancel: ${err instanceof Error ? err.message : String(err)}`);
        }
      },
      dismiss: () => view.note("c cancel the job · q stop watching"),
      quit: () => quit.abort(),
    });
  }
  let final: Job;
  try {
    final = await client.follow(id, {
      signal,
      onEvent: (event) => {
        if (o.json) o.screen.write(`${JSON.stringify(event)}\n`);
        else view?.onEvent(event);
      },
    });
  } catch (err) {
    if (!quit.signal.aborted) throw err;
    view?.stop();
    o.screen.write(
      `stopped watching; job ${id} keeps running (quench watch ${id} to follow it again)\n`,
    );
    return EXIT.ok;
  } finally {
    watching.abort();
  }
  final = await withStopTime(client, final);
  if (o.json) o.screen.write(`${JSON.stringify({ event: "final", data: final })}\n`);
  else view?.close(final);
  return final.status === "completed" ? EXIT.ok : EXIT.jobNotCompleted;
}

/** The watch keys: `c` asks, `y` (after `c`) confirms, anything else dismisses; `q` quits. */
async function listenForKeys(
  keys: AsyncIterable<string>,
  on: { ask(): void; confirm(): Promise<void>; dismiss(): void; quit(): void },
): Promise<void> {
  let asked = false;
  for await (const key of keys) {
    const k = key.toLowerCase();
    if (asked) {
      asked = false;
      if (k === "y") await on.confirm();
      else on.dismiss();
    } else if (k === "c") {
      asked = true;
      on.ask();
    } else if (k === "q") {
      on.quit();
      return;
    }
  }
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
