import type { Db } from "../db/connection.js";
import { getJob, getJobOwner, type JobWithExecutions } from "../db/jobs.js";
import { type Principal, requireOwnership, requireScope, type Scope } from "./auth/principal.js";
import { ApiError } from "./errors.js";
import { uuid } from "./schemas.js";

/**
 * The job `id` names, if `principal` may act on it with `scope`: 403 without
 * the scope or for someone else's job, 404 for an id that is unknown — or not
 * a UUID, since no job can have it.
 */
/** Like `jobFor`, reading only the owner: enough to authorize a cancel. */
export async function ownedJobId(
  db: Db,
  principal: Principal,
  id: string,
  scope: Scope,
): Promise<string> {
  requireScope(principal, scope);
  const job = uuid.safeParse(id).success ? await getJobOwner(db, id) : undefined;
  if (job === undefined) throw new ApiError("not_found", `job ${id.slice(0, 100)} does not exist`);
  requireOwnership(principal, job);
  return job.id;
}

export async function jobFor(
  db: Db,
  principal: Principal,
  id: string,
  scope: Scope,
): Promise<JobWithExecutions> {
  requireScope(principal, scope);
  const job = uuid.safeParse(id).success ? await getJob(db, id) : undefined;
  if (job === undefined) throw new ApiError("not_found", `job ${id.slice(0, 100)} does not exist`);
  requireOwnership(principal, job);
  return job;
}
