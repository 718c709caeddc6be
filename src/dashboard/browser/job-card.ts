import { html, nothing, type TemplateResult } from "lit-html";
import {
  canResume,
  elapsedText,
  progressFraction,
  progressText,
  promptText,
  queueText,
  remoteStopText,
  stopDelayMs,
  usageText,
} from "../../client/job-facts.js";
import type { Execution, Job } from "../../client/types.js";
import { isTerminalJobStatus } from "../../vocabulary.js";

/** What the page knows of a job besides the job itself. */
export interface JobExtras {
  /** The streamed text per execution id, in the pieces it arrived in (see app.ts `textChunks`). */
  chunks: Map<string, string[]>;
  /** The latest structured progress report per execution id (from the stream). */
  reports: Map<string, unknown>;
  cancelling: boolean;
  resuming: boolean;
  /** The server can't be reached: Cancel waits (the banner says why). */
  offline: boolean;
  /** The time of this render (ms since the epoch), for the elapsed times. */
  now: number;
}

/** Longest prompt shown on a card; the whole one is its tooltip. */
const PROMPT_CHARS = 160;

/**
 * One job as a list item, as a lit-html template: rendered again on every
 * update, lit-html changes only the parts whose values changed, so the
 * Cancel button keeps its focus and a selection in the output survives new
 * text (which arrives as new text nodes after the old ones; text is always
 * text, never HTML: provider output is untrusted).
 */
export function jobCard(job: Job, extras: JobExtras): TemplateResult {
  const active = !isTerminalJobStatus(job.status);
  const queued = queueText(job.queue_position);
  const texts = job.executions.map((e) => extras.chunks.get(e.id) ?? []);
  const hasText = texts.some((t) => t.length > 0);
  const prompt = promptText(job.metadata);
  return html`<li class="job" data-job-id=${job.id} data-status=${job.status}>
    <div class="job-head">
      <span class="status status-${job.status}">${job.status.replace("_", " ")}</span>
      <span class="job-id" title=${job.id}>${job.id}</span>
      ${queued ? html`<span class="queue">${queued}</span>` : nothing}
      <span class="actions">${action(job, extras, active)}</span>
    </div>
    ${meta(job, extras.now)}
    ${prompt ? html`<p class="prompt" title=${prompt}>${prompt.length > PROMPT_CHARS ? `${prompt.slice(0, PROMPT_CHARS)}…` : prompt}</p>` : nothing}
    ${job.executions.map(
      (e) =>
        html`${executionLine(e, extras.chunks.get(e.id))}${progressBar(
          extras.reports.get(e.id) ?? e.progress,
        )}`,
    )}
    ${hasText ? html`<pre class="output">${texts.map((t, i) => html`${i > 0 ? "\n" : ""}${t}`)}</pre>` : nothing}
    ${job.status === "cancelled" ? html`<p class="stop-time">${stopTime(job)}</p>` : nothing}
    ${job.error ? html`<p class="note">${job.error.code}: ${job.error.message}</p>` : nothing}
    ${job.resumed_from ? html`<p class="note">Resumes job ${job.resumed_from.slice(0, 8)}.</p>` : nothing}
    ${job.resumed_by ? html`<p class="note">Resumed as job ${job.resumed_by.slice(0, 8)}.</p>` : nothing}
  </li>`;
}

/** When the job was made (local time; the exact time as its tooltip) and how long it has waited or run. */
function meta(job: Job, now: number): TemplateResult {
  const created = new Date(job.created_at);
  const elapsed = elapsedText(job, now);
  return html`<p class="job-meta">
    <time datetime=${job.created_at} title=${created.toLocaleString()}>created ${created.toLocaleTimeString()}</time>${elapsed ? html` · <span class="elapsed">${elapsed}</span>` : nothing}
  </p>`;
}

/** Cancel while the job is live, Resume once its work stopped; the same button element across updates. */
function action(job: Job, extras: JobExtras, active: boolean) {
  if (active) {
    return html`<button type="button" class="danger" data-action="cancel" data-job-id=${job.id}
      ?disabled=${extras.cancelling || extras.offline}>${extras.cancelling ? "Cancelling…" : "Cancel"}</button>`;
  }
  if (!canResume(job)) return nothing;
  return html`<button type="button" data-action="resume" data-job-id=${job.id} ?disabled=${extras.resuming}
    title="Run the unfinished executions again as a new job; completed ones are kept">${
      extras.resuming ? "Resuming…" : "Resume"
    }</button>`;
}

function executionLine(e: Execution, chunks: string[] | undefined) {
  const chars = (chunks ?? []).reduce((n, c) => n + c.length, 0);
  const parts = [e.key, `${e.provider}/${e.model}`, e.status, `${chars} chars`];
  if (e.partial) parts.push("partial");
  // Why it failed or was skipped; a cancel's reason is the job's, shown below.
  if (e.error && e.status !== "cancelled") parts.push(`${e.error.code}: ${e.error.message}`);
  const gpu = e.gpu_released_at ? "GPU released" : "";
  for (const fact of [usageText(e.usage), remoteStopText(e.remote_stop), gpu]) {
    if (fact) parts.push(fact);
  }
  return html`<div class="execution">${parts.join(" · ")}</div>`;
}

/** A training run's structured progress: a bar where it has step and total, and its text. */
function progressBar(report: unknown) {
  const text = progressText(report);
  if (!text) return nothing;
  const fraction = progressFraction(report);
  return html`<div class="progress">${
    fraction === undefined
      ? nothing
      : html`<progress value=${String(fraction)} max="1" aria-label=${text}></progress>`
  }<span>${text}</span></div>`;
}

/** How fast the work stopped, from SPEC's cancelled_at and stopped_at. */
export function stopTime(job: Job): string {
  if (job.started_at === null) return "Cancelled before it started: no work ran.";
  const ms = stopDelayMs(job.cancelled_at, job.stopped_at);
  if (ms === undefined) return "Waiting for the runner to confirm the stop…";
  return `Stopped ${ms} ms after the cancel.`;
}
