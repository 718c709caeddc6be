import { outputText } from "../../client/job-facts.js";
import type { Job } from "../../client/types.js";

/**
 * `quench output <id>`: each execution's text (partial output included, so
 * a cancelled job's streamed words are there). One execution: its text
 * alone; several: each under a line naming it. `--json`: one array of
 * `{key, status, partial, output}`.
 */
export function printOutput(job: Job, o: { json: boolean; write: (text: string) => void }): void {
  if (o.json) {
    const rows = job.executions.map((e) => ({
      key: e.key,
      status: e.status,
      partial: e.partial,
      output: e.output,
    }));
    o.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  const many = job.executions.length > 1;
  for (const e of job.executions) {
    const text = outputText(e.output);
    if (many) {
      const facts = [e.status, e.partial ? "partial" : ""].filter(Boolean).join(", ");
      o.write(`== ${e.key} (${e.provider}/${e.model}, ${facts})\n`);
    }
    o.write(text === "" ? (many ? "(no output)\n" : "") : text.endsWith("\n") ? text : `${text}\n`);
  }
}
