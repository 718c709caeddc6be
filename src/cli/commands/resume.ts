import type { Job } from "../../client/types.js";

/** What `quench resume` prints: the new job, and which executions it carries over. */
export function describeResume(oldId: string, job: Job): string {
  const kept = job.executions.filter((e) => e.resumed).map((e) => e.key);
  const again = job.executions.filter((e) => !e.resumed).map((e) => e.key);
  const keptText = kept.length === 0 ? "nothing carried over" : `kept ${kept.join(", ")}`;
  const againText = again.length === 0 ? "" : `; runs ${again.join(", ")}`;
  return `resumed job ${oldId} as ${job.id}: ${keptText}${againText}\nfollow it: quench watch ${job.id}`;
}
