import type { Db } from "../../db/connection.js";
import { getJob } from "../../db/jobs.js";
import { resumeJob } from "../../db/resume.js";
import * as routes from "../contract/jobs-routes.js";
import { ApiError } from "../errors.js";
import { ownedJobId } from "../job-access.js";
import { jobView } from "../job-view.js";
import { router } from "../router.js";

/** `POST /jobs/:id/resume` (SPEC.md section 3): a new job that continues a stopped one. */
export function resumeRoutes(deps: { db: Db; notifyNewWork: () => void }) {
  const app = router();

  app.openapi(routes.resumeJob, async (c) => {
    const principal = c.get("principal");
    // The same authorization as a cancel: a resume spends GPU time on the owner's behalf.
    const id = await ownedJobId(deps.db, principal, c.req.valid("param").id, "jobs:cancel");
    const result = await resumeJob(deps.db, id, principal.owner);
    if (result.outcome === "not_found") throw new ApiError("not_found", `job ${id} does not exist`);
    if (result.outcome === "already_resumed") {
      throw new ApiError("conflict", `job ${id} was already resumed as ${result.resumedBy}`, {
        resumed_by: result.resumedBy,
      });
    }
    if (result.outcome === "not_resumable") {
      throw new ApiError("not_resumable", `job ${id} cannot be resumed: ${result.why}`, {
        status: result.status,
      });
    }
    deps.notifyNewWork();
    const job = await getJob(deps.db, result.jobId);
    if (job === undefined) throw new Error(`job ${result.jobId} vanished after resume`);
    c.get("log").info({ job_id: result.jobId, resumed_from: id }, "job resumed");
    c.header("location", `/api/v1/jobs/${result.jobId}`);
    return c.json(jobView(job), 201);
  });

  return app;
}
