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
