import {
  canResume,
  outputText,
  progressFraction,
  progressText,
  queueText,
  remoteStopText,
  stopDelayMs,
  usageText,
} from "../../client/job-facts.js";
import type { Execution, Job } from "../../client/types.js";
import { isTerminalJobStatus } from "../../vocabulary.js";
import { h } from "./dom.js";

const OUTPUT_CHARS = 400;

/** What the page knows of a job besides the job itself. */
export interface JobExtras {
  /** The latest streamed output per execution id. */
  progress: Map<string, unknown>;
  /** The latest structured progress report per execution id (from the stream). */
  reports: Map<string, unknown>;
  cancelling: boolean;
  resuming: boolean;
}

/** One job as a list item: status, each execution, output so far, Cancel, and the stop time. */
export function jobCard(job: Job, extras: JobExtras): HTMLLIElement {
  const active = !isTerminalJobStatus(job.status);
  const cancel = active
    ? h(
        "button",
        {
          type: "button",
          class: "danger",
          "data-action": "cancel",
          "data-job-id": job.id,
          disabled: extras.cancelling,
        },
        extras.cancelling ? "Cancelling…" : "Cancel",
      )
    : canResume(job)
      ? h(
          "button",
          {
            type: "button",
            "data-action": "resume",
            "data-job-id": job.id,
            disabled: extras.resuming,
            title: "Run the unfinished executions again as a new job; completed ones are kept",
          },
          extras.resuming ? "Resuming…" : "Resume",
        )
      : null;
  const queued = queueText(job.queue_position);
  const text = job.executions
    .map((e) => outputText(extras.progress.get(e.id) ?? e.output))
    .join("\n");
  return h(
    "li",
    { class: "job", "data-job-id": job.id, "data-status": job.status },
    h(
      "div",
      { class: "job-head" },
      h("span", { class: "job-id", title: job.id }, job.id),
      h("span", { class: `status status-${job.status}` }, job.status.replace("_", " ")),
      queued ? h("span", { class: "queue" }, queued) : null,
      cancel,
    ),
    ...job.executions.flatMap((e) => [
      executionLine(e, extras.progress.get(e.id)),
      progressBar(extras.reports.get(e.id) ?? e.progress),
    ]),
    text
      ? h(
          "pre",
          { class: "output" },
          text.length > OUTPUT_CHARS ? `…${text.slice(-OUTPUT_CHARS)}` : text,
        )
      : null,
    job.status === "cancelled" ? h("p", { class: "stop-time" }, stopTime(job)) : null,
    job.error ? h("p", { class: "note" }, `${job.error.code}: ${job.error.message}`) : null,
    job.resumed_from
      ? h("p", { class: "note" }, `Resumes job ${job.resumed_from.slice(0, 8)}.`)
      : null,
    job.resumed_by
      ? h("p", { class: "note" }, `Resumed as job ${job.resumed_by.slice(0, 8)}.`)
      : null,
  );
}

function executionLine(e: Execution, progress: unknown): HTMLElement {
  const chars = outputText(progress ?? e.output).length;
  const parts = [e.key, `${e.provider}/${e.model}`, e.status, `${chars} chars`];
  if (e.partial) parts.push("partial");
  // Why it failed or was skipped; a cancel's reason is the job's, shown below.
  if (e.error && e.status !== "cancelled") parts.push(`${e.error.code}: ${e.error.message}`);
  const gpu = e.gpu_released_at ? "GPU released" : "";
  for (const fact of [usageText(e.usage), remoteStopText(e.remote_stop), gpu]) {
    if (fact) parts.push(fact);
  }
  return h("div", { class: "execution" }, parts.join(" · "));
}

/** A training run's structured progress: a bar where it has step and total, and its text. */
function progressBar(report: unknown): HTMLElement | null {
  const text = progressText(report);
  if (!text) return null;
  const fraction = progressFraction(report);
  return h(
    "div",
    { class: "progress" },
    fraction === undefined
      ? null
      : h("progress", { value: String(fraction), max: "1", "aria-label": text }),
    h("span", {}, text),
  );
}

/** How fast the work stopped, from SPEC's cancelled_at and stopped_at. */
export function stopTime(job: Job): string {
  if (job.started_at === null) return "Cancelled before it started: no work ran.";
  const ms = stopDelayMs(job.cancelled_at, job.stopped_at);
  if (ms === undefined) return "Waiting for the runner to confirm the stop…";
  return `Stopped ${ms} ms after the cancel.`;
}
