import type { QuenchClient } from "../../client/client.js";
import type { Job, JobStatus } from "../../client/types.js";
import { JOB_STATUSES } from "../../vocabulary.js";
import { UsageError } from "../errors.js";
import { elapsed, table } from "../format.js";

/** `quench jobs [--status] [--limit] [--cursor]`: your jobs, newest first, as a table. */
export async function listJobs(
  client: QuenchClient,
  o: {
    status?: string | undefined;
    limit?: string | undefined;
    cursor?: string | undefined;
    json: boolean;
    write: (text: string) => void;
  },
): Promise<void> {
  if (o.status !== undefined && !(JOB_STATUSES as readonly string[]).includes(o.status)) {
    throw new UsageError(`--status must be one of ${JOB_STATUSES.join(", ")}`);
  }
  const limit = o.limit === undefined ? 20 : Number(o.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw new UsageError("--limit must be a whole number from 1 to 100");
  }
  const page = await client.jobs({
    status: o.status as JobStatus | undefined,
    limit,
    cursor: o.cursor,
  });
  if (o.json) {
    o.write(`${JSON.stringify(page)}\n`);
    return;
  }
  if (page.jobs.length === 0) {
    o.write(o.status ? `no ${o.status} jobs\n` : "no jobs yet: `quench submit` starts one\n");
    return;
  }
  o.write(`${table(["ID", "STATUS", "CREATED", "TIME", "EXECUTIONS"], page.jobs.map(row))}\n`);
  if (page.next_cursor !== null) o.write(`more: quench jobs --cursor ${page.next_cursor}\n`);
}

function row(job: Job): string[] {
  const done = job.executions.filter((e) => e.status === "completed").length;
  return [
    job.id,
    job.status,
    (job.created_at ?? "").replace("T", " ").replace(/\.\d+Z$/, "Z"),
    elapsed(job.started_at, job.finished_at),
    `${done}/${job.executions.length} completed`,
  ];
}
