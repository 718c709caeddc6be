import type { Db } from "../db/connection.js";
import { getJob, getJobOwner, type JobWithExecutions } from "../db/jobs.js";
import { type Principal, requireOwnership, requireScope, type Scope } from "./auth/principal.js";
import { ApiError } from "./errors.js";
import { uuid } from "./schemas.js";

/**
 * What `load` finds for `id`, if `principal` may act on it with `scope`: 403
 * without the scope or for someone else's job, 404 for an id that is unknown
 * — or not a UUID, since no job can have it.
 */
async function authorized<T extends { id: string; owner: string }>(
  principal: Principal,
  id: string,
  scope: Scope,
  load: (id: string) => Promise<T | undefined>,
): Promise<T> {
  requireScope(principal, scope);
  const job = uuid.safeParse(id).success ? await load(id) : undefined;
  if (job === undefined) throw new ApiError("not_found", `job ${id.slice(0, 100)} does not exist`);
  requireOwnership(principal, job);
  return job;
}

/** The whole job, with its executions. */
export function jobFor(
  db: Db,
  principal: Principal,
  id: string,
  scope: Scope,
): Promise<JobWithExecutions> {
  return authorized(principal, id, scope, (i) => getJob(db, i));
}

/** Only the job's id, reading only its owner: enough to authorize a cancel. */
export async function ownedJobId(
  db: Db,
  principal: Principal,
  id: string,
  scope: Scope,
): Promise<string> {
  return (await authorized(principal, id, scope, (i) => getJobOwner(db, i))).id;
}
