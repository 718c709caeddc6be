/** Facts read off SPEC's job objects, shared by the CLI and the dashboard. */

/** An execution's output as text: an OpenAI-style `{text}`, a string, or else its JSON. */
export function outputText(output: unknown): string {
  if (output === null || output === undefined) return "";
  if (typeof output === "string") return output;
  if (typeof output === "object" && "text" in output && typeof output.text === "string") {
    return output.text;
  }
  return JSON.stringify(output);
}

/** Milliseconds from a cancel to the runner's stop report; undefined until both are known. */
export function stopDelayMs(
  cancelledAt: string | null,
  stoppedAt: string | null,
): number | undefined {
  if (cancelledAt === null || stoppedAt === null) return undefined;
  return Math.max(0, Date.parse(stoppedAt) - Date.parse(cancelledAt));
}

/** GPU time and cost as people read it ("GPU 1.5 s, $0.0015", "GPU 42 ms"); empty before any was used. */
export function usageText(usage: { gpu_ms: number; cost_usd: number | null } | undefined): string {
  if (usage === undefined || usage.gpu_ms <= 0) return "";
  const ms = usage.gpu_ms;
  const time =
    ms < 1_000
      ? `${ms} ms`
      : ms < 10_000
        ? `${(ms / 1000).toFixed(1)} s`
        : `${Math.round(ms / 1000)} s`;
  return `GPU ${time}${usage.cost_usd === null ? "" : `, $${usage.cost_usd}`}`;
}

/** A remote-queue execution's stop as people read it; empty where closing the connection is the stop. */
export function remoteStopText(
  stop: { outcome: "confirmed" | "requested" | "already_finished" | "failed" } | null | undefined,
): string {
  if (stop == null) return "";
  return {
    confirmed: "provider confirmed the stop",
    requested: "provider stop requested, not confirmed yet",
    already_finished: "provider had already finished",
    failed: "provider stop FAILED: the GPU may still be running",
  }[stop.outcome];
}

/** "3rd in queue" for a queued job's `queue_position`; "" when it has none. */
export function queueText(position: number | null | undefined): string {
  if (position == null) return "";
  const teen = position % 100 >= 11 && position % 100 <= 13;
  const suffix = teen ? "th" : (["th", "st", "nd", "rd"][position % 10] ?? "th");
  return `${position}${suffix} in queue`;
}

/** Whether a job's work has stopped for good, so it may be resumed (SPEC.md section 3). */
export function canResume(job: {
  status: string;
  started_at: string | null;
  stopped_at: string | null;
  resumed_by: string | null;
}): boolean {
  if (job.resumed_by !== null) return false;
  if (!["cancelled", "failed", "partial", "timed_out"].includes(job.status)) return false;
  return job.status !== "cancelled" || job.started_at === null || job.stopped_at !== null;
}

/** A structured progress report as people read it: "step 120/1000 (12%) epoch 1"; "" when none. */
export function progressText(progress: unknown): string {
  if (progress === null || progress === undefined) return "";
  if (typeof progress !== "object" || Array.isArray(progress))
    return String(JSON.stringify(progress)).slice(0, 80);
  const { step, total, message } = progress as {
    step?: unknown;
    total?: unknown;
    message?: unknown;
  };
  const parts: string[] = [];
  if (typeof step === "number" && typeof total === "number" && total > 0) {
    parts.push(`step ${step}/${total} (${Math.floor((step / total) * 100)}%)`);
  } else if (typeof step === "number") parts.push(`step ${step}`);
  if (typeof message === "string" && message !== "") parts.push(message.slice(0, 80));
  return parts.length > 0 ? parts.join(" ") : JSON.stringify(progress).slice(0, 80);
}

/** The fraction done of a report with numeric `step` and `total`, else undefined. */
export function progressFraction(progress: unknown): number | undefined {
  if (typeof progress !== "object" || progress === null) return undefined;
  const { step, total } = progress as { step?: unknown; total?: unknown };
  if (typeof step !== "number" || typeof total !== "number" || total <= 0) return undefined;
  return Math.min(1, Math.max(0, step / total));
}

/** What a job was asked, for people: its `metadata.prompt` (the dashboard sets it), else "". */
export function promptText(metadata: Record<string, unknown> | undefined): string {
  const prompt = metadata?.prompt;
  return typeof prompt === "string" ? prompt.trim() : "";
}

/** "4.2 s", "38 s", "3 min 5 s", "2 h 7 min": a span of `ms` for people. */
export function durationText(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * How long a job has waited, run or ran, at `now` (ms since the epoch):
 * "queued for 3.0 s", "running for 12 s", "ran 4.2 s"; "" for a job that
 * ended without ever running.
 */
export function elapsedText(
  job: {
    status: string;
    created_at: string;
    started_at: string | null;
    finished_at: string | null;
    stopped_at: string | null;
  },
  now: number,
): string {
  const since = (at: string) => now - Date.parse(at);
  if (job.status === "queued") return `queued for ${durationText(since(job.created_at))}`;
  if (job.started_at === null) return "";
  const started = Date.parse(job.started_at);
  if (job.status === "running") return `running for ${durationText(now - started)}`;
  const end = job.stopped_at ?? job.finished_at;
  return end === null ? "" : `ran ${durationText(Date.parse(end) - started)}`;
}
