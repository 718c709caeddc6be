import { createLogUpdate } from "log-update";
import {
  outputText,
  progressText,
  queueText,
  remoteStopText,
  stopDelayMs,
  usageText,
} from "../client/job-facts.js";
import type { Execution, Job, StreamEvent } from "../client/types.js";
import { duration, elapsed } from "./format.js";

/** Where the view writes: a terminal gets a block redrawn in place, anything else plain lines. */
export interface Screen {
  write(text: string): void;
  tty: boolean;
  /** The terminal's width (log-update wraps to it); 80 when unknown. */
  columns?: number;
}

/** Lines of streamed output the terminal view shows under the executions. */
const OUTPUT_LINES = 6;

const REDRAW_MS = 100;
const PLAIN_PROGRESS_MS = 1_000;

/**
 * The live view of `quench watch` and `submit --wait`: the job and each
 * execution with status, elapsed time and streamed characters. Call
 * `onEvent` for every stream event and `close` once the job ended.
 */
export function createLiveView(screen: Screen) {
  let job: Job | undefined;
  const chars = new Map<string, number>();
  /** The latest structured progress report per execution key (from the stream). */
  const reports = new Map<string, unknown>();
  const lastPlainProgress = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  /** The latest streamed text per execution key (the terminal view shows its last lines). */
  const texts = new Map<string, string>();
  /** A line under the block: the cancel prompt, a note. */
  let footer = "";
  // log-update does the redraw: it erases what it drew last, wrapped to the terminal's width.
  const log = screen.tty
    ? createLogUpdate(
        {
          write: (text: string) => {
            screen.write(text);
            return true;
          },
          get columns() {
            // A terminal that reports no width (0, or none) is taken as 80 wide, never 0.
            return screen.columns || 80;
          },
        } as unknown as NodeJS.WriteStream,
        { showCursor: true },
      )
    : undefined;

  const executionLine = (e: Execution) => {
    const count = chars.get(e.key) ?? outputText(e.output).length;
    const time = elapsed(e.started_at, e.finished_at);
    const extra = [
      progressText(reports.get(e.key) ?? e.progress),
      usageText(e.usage),
      remoteStopText(e.remote_stop),
      e.gpu_released_at ? "GPU released" : "",
    ].filter(Boolean);
    return `  ${e.key}  ${e.provider}/${e.model}  ${e.status}${time ? `  ${time}` : ""}  ${count} chars${e.partial ? " (partial)" : ""}${extra.map((x) => `  ${x}`).join("")}`;
  };
  const jobLine = (j: Job) => {
    const time = elapsed(j.started_at, j.finished_at);
    const queued = queueText(j.queue_position);
    return `job ${j.id}  ${j.status}${queued ? `  ${queued}` : ""}${time ? `  ${time}` : ""}`;
  };

  function draw() {
    timer = undefined;
    if (job === undefined) return;
    const text = [...texts.values()].join("\n").trimEnd();
    const tail = text === "" ? [] : ["", ...text.split("\n").slice(-OUTPUT_LINES)];
    log?.(
      [
        jobLine(job),
        ...job.executions.map(executionLine),
        ...tail,
        ...(footer ? ["", footer] : []),
      ].join("\n"),
    );
  }
  const scheduleDraw = () => {
    timer ??= setTimeout(draw, REDRAW_MS);
  };
  // Elapsed times move even when nothing streams.
  const ticker = screen.tty ? setInterval(scheduleDraw, 1_000) : undefined;

  function plain(event: StreamEvent) {
    const at = new Date().toISOString();
    if (event.event === "job") {
      if (job?.status !== event.data.status || job?.queue_position !== event.data.queue_position)
        screen.write(`${at}  ${jobLine(event.data)}\n`);
      for (const e of event.data.executions) {
        const before = job?.executions.find((b) => b.id === e.id);
        if (before?.status !== e.status) screen.write(`${at}  ${executionLine(e)}\n`);
      }
    } else if (event.event === "execution") {
      const before = job?.executions.find((e) => e.id === event.data.id);
      // A remote stop and a stop's partial output land after the status: news too.
      if (
        before?.status !== event.data.status ||
        before?.partial !== event.data.partial ||
        before?.gpu_released_at !== event.data.gpu_released_at ||
        before?.remote_stop?.outcome !== event.data.remote_stop?.outcome
      )
        screen.write(`${at}  ${executionLine(event.data)}\n`);
    } else if (event.event === "progress") {
      const last = lastPlainProgress.get(event.data.key) ?? 0;
      if (Date.now() - last >= PLAIN_PROGRESS_MS) {
        lastPlainProgress.set(event.data.key, Date.now());
        const report = progressText(event.data.progress);
        screen.write(
          `${at}    ${event.data.key}: ${report || `${outputText(event.data.output).length} chars`}\n`,
        );
      }
    }
  }

  return {
    onEvent(event: StreamEvent) {
      if (!screen.tty) plain(event);
      if (event.event === "job") job = event.data;
      else if (event.event === "execution" && job !== undefined) {
        job = {
          ...job,
          executions: job.executions.map((e) => (e.id === event.data.id ? event.data : e)),
        };
      } else if (event.event === "progress") {
        const text = outputText(event.data.output);
        chars.set(event.data.key, text.length);
        texts.set(event.data.key, text);
        if (event.data.progress !== null) reports.set(event.data.key, event.data.progress);
      }
      if (screen.tty) scheduleDraw();
    },
    /** Stops redrawing and prints the final state and, for a cancel, how fast it stopped. */
    /** A line shown under the block on a terminal (the cancel prompt); "" clears it. */
    note(text: string) {
      footer = text;
      if (screen.tty) scheduleDraw();
      else if (text !== "") screen.write(`${text}\n`);
    },
    close(final: Job) {
      clearInterval(ticker);
      clearTimeout(timer);
      job = final;
      chars.clear();
      footer = "";
      if (log !== undefined) {
        draw();
        log.done();
      }
      screen.write(`${summary(final)}\n`);
    },
    /** Stops redrawing, leaving what was drawn (watching was given up: `q`). */
    stop() {
      clearInterval(ticker);
      clearTimeout(timer);
      footer = "";
      if (log !== undefined) {
        draw();
        log.done();
      }
    },
  };
}

/** One line on how a job ended. */
export function summary(job: Job): string {
  const time = elapsed(job.started_at ?? job.created_at, job.finished_at);
  let line = `job ${job.id} ${job.status}${time ? ` after ${time}` : ""}`;
  if (job.status === "cancelled") {
    line += job.cancelled_by ? ` (cancelled by ${job.cancelled_by})` : "";
    line += stopLine(job.cancelled_at, job.stopped_at, job.started_at !== null);
  }
  if (job.error) line += `: ${job.error.message} (${job.error.code})`;
  // How far a stopped training run got, from its last progress report.
  for (const e of job.executions) {
    const report = progressText(e.progress);
    if (report && e.status !== "completed") line += `; ${e.key} got to ${report}`;
  }
  return line;
}

/** How long the work took to stop after the cancel, as SPEC's `stopped_at` tells it. */
export function stopLine(
  cancelledAt: string | null,
  stoppedAt: string | null,
  ran: boolean,
): string {
  if (!ran) return "; it never started";
  const ms = stopDelayMs(cancelledAt, stoppedAt);
  if (ms === undefined) return "; the stop is not acknowledged yet";
  return `; work stopped ${duration(ms)} after the cancel`;
}
