import type { Db } from "../db/connection.js";
import { getJob, type JobWithExecutions } from "../db/jobs.js";
import { type Principal, requireOwnership, requireScope, type Scope } from "./auth/principal.js";
import { ApiError } from "./errors.js";
import { uuid } from "./schemas.js";

/**
 * The job `id` names, if `principal` may act on it with `scope`: 403 without
 * the scope or for someone else's job, 404 for an id that is unknown — or not
 * a UUID, since no job can have it.
 */
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
