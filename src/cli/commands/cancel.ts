import type { QuenchClient } from "../../client/client.js";
import type { CancelResponse } from "../../client/types.js";
import { stopLine } from "../live-view.js";

/** `quench cancel <id> [--reason]`: prints SPEC's cancel response, with the time the work took to stop. */
export async function cancelJob(
  client: QuenchClient,
  id: string,
  o: { reason?: string | undefined; json: boolean; write: (text: string) => void },
): Promise<void> {
  const result = await client.cancel(id, { reason: o.reason });
  o.write(o.json ? `${JSON.stringify(result)}\n` : `${describeCancel(result)}\n`);
}

/**
 * `quench cancel <id> <id>…`: one bulk request (`POST /jobs/cancel`, which
 * answers without waiting for each stop). Prints a line per job; resolves
 * false when any was refused.
 */
export async function cancelJobs(
  client: QuenchClient,
  ids: string[],
  o: { reason?: string | undefined; json: boolean; write: (text: string) => void },
): Promise<boolean> {
  const answer = await client.cancelMany(ids, { reason: o.reason });
  if (o.json) o.write(`${JSON.stringify(answer)}\n`);
  else {
    for (const r of answer.results) {
      o.write(
        r.ok
          ? `cancelled job ${r.job_id} (was ${r.previous_status})\n`
          : `job ${r.job_id}: ${r.error?.message ?? "refused"} (${r.error?.code ?? "error"})\n`,
      );
    }
  }
  return answer.results.every((r) => r.ok);
}

export function describeCancel(r: CancelResponse): string {
  const executions = `${r.executions_cancelled} execution${r.executions_cancelled === 1 ? "" : "s"} cancelled`;
  return `cancelled job ${r.job_id} (was ${r.previous_status}): ${executions}${stopLine(r.cancelled_at, r.stopped_at, r.previous_status !== "queued")}`;
}
