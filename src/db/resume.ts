import { randomUUID } from "node:crypto";
import { and, asc, eq, isNull } from "drizzle-orm";
import type { JobStatus } from "../vocabulary.js";
import type { Db } from "./connection.js";
import { appendEvent } from "./events.js";
import { executions, jobs } from "./schema.js";

/** The statuses a job can be resumed from (SPEC.md section 3, `POST /jobs/:id/resume`). */
const RESUMABLE: ReadonlySet<JobStatus> = new Set(["cancelled", "failed", "partial", "timed_out"]);

export type ResumeOutcome =
  | { outcome: "resumed"; jobId: string }
  | { outcome: "not_found" }
  | { outcome: "not_resumable"; status: JobStatus; why: string }
  | { outcome: "already_resumed"; resumedBy: string };

/**
 * Makes a new queued job that continues a stopped one, in one transaction
 * that holds the old job's row: the same owner, executions, `max_parallel`,
 * `timeout_ms` and metadata; each execution that completed is copied
 * completed with its output, times and usage (`resumed`, never run again),
 * every other starts pending. The old job gets `resumed_by` (at most once)
 * and a `resumed` event; the new one `resumed_from` and its `submitted` event.
 */
export async function resumeJob(db: Db, jobId: string, actor: string): Promise<ResumeOutcome> {
  return db.transaction(async (tx): Promise<ResumeOutcome> => {
    const [old] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).for("no key update");
    if (old === undefined) return { outcome: "not_found" };
    if (old.resumedBy !== null) return { outcome: "already_resumed", resumedBy: old.resumedBy };
    if (!RESUMABLE.has(old.status)) {
      return { outcome: "not_resumable", status: old.status, why: `it is ${old.status}` };
    }
    // A cancel is terminal at once, but its work may still be stopping.
    if (old.status === "cancelled" && old.startedAt !== null && old.stoppedAt === null) {
      return { outcome: "not_resumable", status: old.status, why: "its work is still stopping" };
    }
    const olds = await tx
      .select()
      .from(executions)
      .where(eq(executions.jobId, jobId))
      .orderBy(asc(executions.position));
    const id = randomUUID();
    await tx.insert(jobs).values({
      id,
      owner: old.owner,
      timeoutMs: old.timeoutMs,
      maxParallel: old.maxParallel,
      metadata: old.metadata,
      resumedFrom: old.id,
    });
    await tx.insert(executions).values(
      olds.map((e) => {
        const carried = e.status === "completed";
        return {
          id: randomUUID(),
          jobId: id,
          position: e.position,
          key: e.key,
          provider: e.provider,
          model: e.model,
          input: e.input,
          dependsOn: e.dependsOn,
          timeoutMs: e.timeoutMs,
          retries: e.retries,
          ...(carried
            ? {
                status: "completed" as const,
                startedAt: e.startedAt,
                finishedAt: e.finishedAt,
                output: e.output,
                remoteId: e.remoteId,
                usage: e.usage,
                resumed: true,
              }
            : {}),
        };
      }),
    );
    const [marked] = await tx
      .update(jobs)
      .set({ resumedBy: id })
      .where(and(eq(jobs.id, old.id), isNull(jobs.resumedBy)))
      .returning({ id: jobs.id });
    if (marked === undefined) throw new Error(`job ${old.id} was resumed under its own lock`);
    const carried = olds.filter((e) => e.status === "completed").map((e) => e.key);
    await appendEvent(tx, {
      jobId: old.id,
      type: "resumed",
      actor,
      data: { resumed_by: id, carried_over: carried },
    });
    await appendEvent(tx, {
      jobId: id,
      type: "submitted",
      actor,
      data: { executions: olds.length, resumed_from: old.id, carried_over: carried },
    });
    return { outcome: "resumed", jobId: id };
  });
}
