import { describe, expect, it } from "vitest";
import { createLiveView } from "../../src/cli/live-view.js";
import type { Job } from "../../src/client/types.js";
import { withDeadline } from "../helpers/process.js";

const job = (status: Job["status"], exec: Job["executions"][number]["status"]): Job => ({
  id: "7cc5015f-4f33-4e9e-b33c-2a01b4ae3756",
  owner: "service:cli",
  status,
  created_at: "2026-11-21T15:00:00.000Z",
  started_at: "2026-11-21T15:00:00.000Z",
  finished_at: status === "running" ? null : "2026-11-21T15:00:04.000Z",
  deadline_at: null,
  cancelled_at: status === "cancelled" ? "2026-11-21T15:00:03.990Z" : null,
  cancelled_by: status === "cancelled" ? "service:cli" : null,
  cancel_reason: null,
  stopped_at: status === "cancelled" ? "2026-11-21T15:00:04.002Z" : null,
  attempt: 1,
  instance: "i",
  error: null,
  metadata: {},
  queue_position: null,
  resumed_from: null,
  resumed_by: null,
  usage: { gpu_ms: 0, cost_usd: null },
  executions: [
    {
      id: "e1",
      key: "chat",
      provider: "demo",
      model: "demo",
      status: exec,
      depends_on: [],
      started_at: "2026-11-21T15:00:00.000Z",
      finished_at: null,
      output: null,
      partial: false,
      error: null,
      remote_id: null,
      resumed: false,
      progress: null,
      gpu_released_at: null,
      remote_stop: null,
      usage: { gpu_ms: 0, source: "wall_clock", cost_usd: null },
    },
  ],
});

/** The live view on a pretend terminal `columns` wide, and a wait for text to appear on it. */
function onTerminal(columns?: number) {
  const screen = {
    tty: true,
    columns,
    text: "",
    write(t: string) {
      screen.text += t;
    },
  };
  const view = createLiveView(screen);
  const until = (needle: string, what: string) =>
    withDeadline(
      (async () => {
        while (!screen.text.includes(needle)) await new Promise((r) => setTimeout(r, 10));
      })(),
      2_000,
      what,
    );
  return { view, screen, until };
}

describe("the live view of quench watch", () => {
  it("on a terminal, redraws the job block in place and ends with the stop time", async () => {
    const { view, screen, until } = onTerminal();
    view.onEvent({ event: "job", data: job("running", "running") });
    await until("chat", "no first draw");
    expect(screen.text).not.toContain("\x1b[2A");
    view.onEvent({
      event: "progress",
      data: { execution_id: "e1", key: "chat", output: { text: "hello" }, progress: null },
    });
    await until("5 chars", "no redraw");
    // log-update erased the block it drew (line by line, cursor up) and drew the new one.
    const redraw = screen.text.slice(screen.text.indexOf("\x1b[2K"));
    const ESC = "\x1b";
    expect(redraw.startsWith(`${ESC}[2K${ESC}[1A`)).toBe(true);
    expect(redraw).toContain(`${ESC}[2K${ESC}[G`);
    expect(redraw).toContain("job 7cc5015f-4f33-4e9e-b33c-2a01b4ae3756  running");
    expect(redraw).toContain("hello");
    view.close(job("cancelled", "cancelled"));
    expect(screen.text.trim().split("\n").at(-1)).toBe(
      "job 7cc5015f-4f33-4e9e-b33c-2a01b4ae3756 cancelled after 4.0 s (cancelled by service:cli); work stopped 12 ms after the cancel",
    );
  });

  it("piped, writes plain lines: one per status change, progress at most once a second", () => {
    let text = "";
    const view = createLiveView({
      tty: false,
      write: (t) => {
        text += t;
      },
    });
    view.onEvent({ event: "job", data: job("running", "running") });
    for (let i = 0; i < 50; i++) {
      view.onEvent({
        event: "progress",
        data: { execution_id: "e1", key: "chat", output: { text: "x".repeat(i) }, progress: null },
      });
    }
    view.close(job("completed", "completed"));
    expect(text).not.toContain("\x1b[");
    const lines = text.trim().split("\n");
    expect(lines.filter((l) => l.includes("chars") && l.includes("chat:"))).toHaveLength(1);
    expect(lines.at(-1)).toBe("job 7cc5015f-4f33-4e9e-b33c-2a01b4ae3756 completed after 4.0 s");
  });

  it("shows each execution's GPU time and its remote stop, and the remote stop's arrival as news", () => {
    let text = "";
    const view = createLiveView({
      tty: false,
      write: (t) => {
        text += t;
      },
    });
    const cancelled = job("cancelled", "cancelled");
    view.onEvent({ event: "job", data: cancelled });
    const [exec] = cancelled.executions;
    if (exec === undefined) throw new Error("no execution");
    view.onEvent({
      event: "execution",
      data: {
        ...exec,
        usage: { gpu_ms: 1_500, source: "provider", cost_usd: 0.0015 },
        remote_stop: {
          requested_at: "2026-11-21T15:00:04.000Z",
          confirmed_at: "2026-11-21T15:00:04.900Z",
          outcome: "confirmed",
        },
      },
    });
    expect(text.trim().split("\n").at(-1)).toMatch(
      /chat {2}demo\/demo {2}cancelled .*GPU 1\.5 s, \$0\.0015 {2}provider confirmed the stop$/,
    );
  });
});

describe("the live view's width", () => {
  it("a terminal that reports a width of 0 is drawn 80 wide, not a character per line", async () => {
    const { view, screen, until } = onTerminal(0);
    view.onEvent({ event: "job", data: job("running", "running") });
    await until("chat", "no first draw");
    expect(screen.text).toContain("job 7cc5015f-4f33-4e9e-b33c-2a01b4ae3756  running");
    view.close(job("completed", "completed"));
  });
});

describe("the end-of-watch summary", () => {
  it("says how far a cancelled training run got", async () => {
    const { summary } = await import("../../src/cli/live-view.js");
    const cancelled = job("cancelled", "cancelled");
    const first = cancelled.executions[0];
    if (first === undefined) throw new Error("no execution");
    cancelled.executions = [{ ...first, progress: { step: 412, total: 1000, message: "epoch 2" } }];
    expect(summary(cancelled)).toMatch(/; chat got to step 412\/1000 \(41%\) epoch 2$/);
  });
});
