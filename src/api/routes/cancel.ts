import { Hono } from "hono";
import pMap from "p-map";
import type { Db } from "../../db/connection.js";
import type { CancelResult, CancelService } from "../../runner/cancel.js";
import { requireScope } from "../auth/principal.js";
import type { ApiEnv } from "../env.js";
import { ApiError } from "../errors.js";
import { jobFor } from "../job-access.js";
import { iso } from "../job-view.js";
import { bulkCancelSchema, cancelSchema } from "../schemas.js";
import { parse, readJson } from "../validation.js";

export interface CancelRoutesDeps {
  db: Db;
  cancelJob: CancelService;
}

/** How many cancels of one bulk request run at once. */
const BULK_CONCURRENCY = 16;

/** `POST /jobs/:id/cancel` and `POST /jobs/cancel` (SPEC.md section 3). */
export function cancelRoutes(deps: CancelRoutesDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.post("/jobs/:id/cancel", async (c) => {
    const principal = c.get("principal");
    const job = await jobFor(deps.db, principal, c.req.param("id"), "jobs:cancel");
    const body = parse(cancelSchema, await readJson(c, { optional: true }), "body");
    const result = await deps.cancelJob(job.id, {
      actor: principal.owner,
      reason: body?.reason ?? null,
    });
    if (!result.ok) throw refusal(result);
    c.get("log").info(
      { job_id: job.id, actor: principal.owner, context_cancelled: result.contextCancelled },
      "job cancelled",
    );
    return c.json({
      ok: true,
      job_id: result.jobId,
      previous_status: result.previousStatus,
      new_status: result.newStatus,
      context_cancelled: result.contextCancelled,
      executions_cancelled: result.executionsCancelled,
      cancelled_at: result.cancelledAt.toISOString(),
      stopped_at: iso(result.stoppedAt),
    });
  });

  app.post("/jobs/cancel", async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:cancel");
    const body = parse(bulkCancelSchema, await readJson(c), "body");
    const one = async (id: string) => {
      try {
        const job = await jobFor(deps.db, principal, id, "jobs:cancel");
        // No wait for each stop acknowledgement: the bulk answer carries no stopped_at.
        const result = await deps.cancelJob(
          job.id,
          { actor: principal.owner, reason: body.reason ?? null },
          { ackMs: 0 },
        );
        if (result.ok) return { job_id: id, ok: true, previous_status: result.previousStatus };
        const error = refusal(result);
        return {
          job_id: id,
          ok: false,
          previous_status: result.code === "not_cancellable" ? result.status : null,
          error: { code: error.code, message: error.message },
        };
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        return {
          job_id: id,
          ok: false,
          previous_status: null,
          error: { code: err.code, message: err.message },
        };
      }
    };
    const results = await pMap(body.job_ids, one, { concurrency: BULK_CONCURRENCY });
    return c.json({ results, cancelled: results.filter((r) => r.ok).length });
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
