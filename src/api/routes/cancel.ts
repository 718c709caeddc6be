import pMap from "p-map";
import type { Db } from "../../db/connection.js";
import type { Metrics } from "../../metrics.js";
import type { CancelResult, CancelService } from "../../runner/cancel.js";
import { isJobStatus } from "../../vocabulary.js";
import { type Principal, requireOwnership, requireScope } from "../auth/principal.js";
import * as routes from "../contract/jobs-routes.js";
import { ApiError } from "../errors.js";
import { ownedJobId } from "../job-access.js";
import { iso } from "../job-view.js";
import { router } from "../router.js";

export interface CancelRoutesDeps {
  db: Db;
  cancelJob: CancelService;
  metrics: Metrics;
  /** The owner of a job this instance's runner holds (no database read needed), else undefined. */
  heldOwner: (jobId: string) => string | undefined;
}

/** How many cancels of one bulk request run at once. */
const BULK_CONCURRENCY = 16;

/** `POST /jobs/:id/cancel` and `POST /jobs/cancel` (SPEC.md section 3). */
export function cancelRoutes(deps: CancelRoutesDeps) {
  const app = router();

  /** Cancels one job for `principal`, counting the outcome; refusals throw ApiError. */
  async function cancelOne(
    principal: Principal,
    id: string,
    reason: string | null,
    options: { ackMs?: number } = {},
  ): Promise<Extract<CancelResult, { ok: true }>> {
    try {
      // A job held here is authorized from memory, so its abort waits for no query.
      const owner = deps.heldOwner(id);
      if (owner === undefined) await ownedJobId(deps.db, principal, id, "jobs:cancel");
      else {
        requireScope(principal, "jobs:cancel");
        requireOwnership(principal, { id, owner });
      }
      const result = await deps.cancelJob(id, { actor: principal.owner, reason }, options);
      if (!result.ok) throw refusal(result);
      deps.metrics.cancelRequests.inc({ outcome: "cancelled" });
      return result;
    } catch (err) {
      if (err instanceof ApiError) deps.metrics.cancelRequests.inc({ outcome: err.code });
      throw err;
    }
  }

  app.openapi(routes.cancelJob, async (c) => {
    const principal = c.get("principal");
    const body = c.req.valid("json");
    const result = await cancelOne(principal, c.req.valid("param").id, body.reason ?? null);
    c.get("log").info(
      { job_id: result.jobId, actor: principal.owner, context_cancelled: result.contextCancelled },
      "job cancelled",
    );
    return c.json(
      {
        ok: true as const,
        job_id: result.jobId,
        previous_status: result.previousStatus,
        new_status: result.newStatus,
        context_cancelled: result.contextCancelled,
        executions_cancelled: result.executionsCancelled,
        cancelled_at: result.cancelledAt.toISOString(),
        stopped_at: iso(result.stoppedAt),
      },
      200,
    );
  });

  app.openapi(routes.cancelJobs, async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:cancel");
    const body = c.req.valid("json");
    const one = async (id: string) => {
      try {
        // No wait for each stop acknowledgement: the bulk answer carries no stopped_at.
        const result = await cancelOne(principal, id, body.reason ?? null, { ackMs: 0 });
        return { job_id: id, ok: true, previous_status: result.previousStatus };
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const status = err.extra.status;
        return {
          job_id: id,
          ok: false,
          previous_status: isJobStatus(status) ? status : null,
          error: { code: err.code, message: err.message },
        };
      }
    };
    const results = await pMap(body.job_ids, one, { concurrency: BULK_CONCURRENCY });
    return c.json({ results, cancelled: results.filter((r) => r.ok).length }, 200);
  });

  return app;
}

function refusal(result: Exclude<CancelResult, { ok: true }>): ApiError {
  return result.code === "not_found"
    ? new ApiError("not_found", `job ${result.jobId} does not exist`)
    : new ApiError("not_cancellable", `job ${result.jobId} is already ${result.status}`, {
        status: result.status,
      });
}
