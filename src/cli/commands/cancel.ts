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

export function describeCancel(r: CancelResponse): string {
  const executions = `${r.executions_cancelled} execution${r.executions_cancelled === 1 ? "" : "s"} cancelled`;
  return `cancelled job ${r.job_id} (was ${r.previous_status}): ${executions}${stopLine(r.cancelled_at, r.stopped_at, r.previous_status !== "queued")}`;
}
