import { createHash } from "node:crypto";
import { getAddress, isAddress } from "viem";
import type { Db } from "../../db/connection.js";
import { listEvents } from "../../db/events.js";
import { IdempotencyConflictError } from "../../db/idempotency.js";
import { insertJob, type JobCursor, listJobs, withQueuePositions } from "../../db/jobs.js";
import type { Metrics } from "../../metrics.js";
import type { ProviderRegistry } from "../../providers/registry.js";
import { isAdmin, type Principal, requireScope } from "../auth/principal.js";
import * as routes from "../contract/jobs-routes.js";
import { ApiError } from "../errors.js";
import { jobFor } from "../job-access.js";
import { eventView, jobView } from "../job-view.js";
import { router } from "../router.js";
import type { SubmitBody } from "../schemas.js";
import { invalid } from "../validation.js";

export interface JobsRoutesDeps {
  db: Db;
  providers: ProviderRegistry;
  /** Wakes this instance's runner: new work was submitted. */
  notifyNewWork: () => void;
  metrics: Metrics;
}

/** `POST /jobs`, `GET /jobs`, `GET /jobs/:id`, `GET /jobs/:id/events` (SPEC.md section 3). */
export function jobsRoutes(deps: JobsRoutesDeps) {
  const app = router();

  app.openapi(routes.submitJob, async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:submit");
    const key = c.req.valid("header")["Idempotency-Key"];
    const body = c.req.valid("json");
    const owner = ownerFor(principal, body);
    const unknown = body.executions.flatMap((e, i) =>
      deps.providers.get(e.provider) === undefined
        ? [
            {
              path: `executions.${i}.provider`,
              message: `no provider named ${e.provider} is configured`,
            },
          ]
        : [],
    );
    if (unknown.length > 0) throw invalid("unknown provider", unknown);

    const newJob = {
      owner,
      timeoutMs: body.timeout_ms,
      maxParallel: body.max_parallel,
      metadata: body.metadata,
      executions: body.executions.map((e) => ({
        key: e.key,
        provider: e.provider,
        model: e.model,
        input: e.input,
        dependsOn: e.depends_on,
        timeoutMs: e.timeout_ms ?? null,
        retries: e.retries ?? deps.providers.get(e.provider)?.provider.config.retries ?? 0,
      })),
    };
    try {
      const { job, created } = await insertJob(deps.db, newJob, {
        actor: principal.owner,
        ...(key === undefined
          ? {}
          : {
              idempotency: {
                principal: principal.owner,
                key,
                requestHash: hashOf({ owner, body }),
              },
            }),
      });
      if (created) {
        deps.metrics.jobsSubmitted.inc();
        deps.notifyNewWork();
        c.get("log").info({ job_id: job.id, owner }, "job submitted");
      }
      c.header("location", `/api/v1/jobs/${job.id}`);
      return c.json(jobView(job), created ? 201 : 200);
    } catch (err) {
      if (err instanceof IdempotencyConflictError) throw new ApiError("conflict", err.message);
      throw err;
    }
  });

  app.openapi(routes.listJobs, async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:read");
    const query = c.req.valid("query");
    if (query.owner !== undefined && !isAdmin(principal)) {
      throw new ApiError("forbidden", "only jobs:admin may list another owner's jobs");
    }
    const owner = isAdmin(principal) ? query.owner : principal.owner;
    const page = await listJobs(deps.db, {
      limit: query.limit,
      ...(owner === undefined ? {} : { owner }),
      ...(query.status === undefined ? {} : { status: query.status }),
      ...(query.cursor === undefined ? {} : { after: decodeCursor(query.cursor) }),
    });
    return c.json(
      {
        jobs: (await withQueuePositions(deps.db, page.jobs)).map(jobView),
        next_cursor: page.nextCursor === null ? null : encodeCursor(page.nextCursor),
      },
      200,
    );
  });

  app.openapi(routes.getJob, async (c) => {
    const job = await jobFor(deps.db, c.get("principal"), c.req.valid("param").id, "jobs:read");
    const [positioned] = await withQueuePositions(deps.db, [job]);
    return c.json(jobView(positioned ?? job), 200);
  });

  app.openapi(routes.listJobEvents, async (c) => {
    const job = await jobFor(deps.db, c.get("principal"), c.req.valid("param").id, "jobs:read");
    return c.json((await listEvents(deps.db, job.id)).map(eventView), 200);
  });

  return app;
}

/** The owner of a new job: the caller, or for `jobs:admin` the wallet it names. */
function ownerFor(principal: Principal, body: SubmitBody): string {
  if (body.owner === undefined) return principal.owner;
  if (!isAdmin(principal))
    throw new ApiError("forbidden", "only jobs:admin may submit on behalf of a wallet");
  if (!isAddress(body.owner, { strict: false })) {
    throw invalid("invalid owner", [{ path: "owner", message: "must be a wallet address (0x…)" }]);
  }
  return getAddress(body.owner);
}

function hashOf(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex");
}

function encodeCursor(cursor: JobCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt.toISOString(), cursor.id])).toString(
    "base64url",
  );
}

function decodeCursor(raw: string): JobCursor {
  try {
    const [at, id] = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as [
      unknown,
      unknown,
    ];
    const createdAt = new Date(String(at));
    if (
      typeof at === "string" &&
      typeof id === "string" &&
      !Number.isNaN(createdAt.getTime()) &&
      /^[0-9a-f-]{36}$/.test(id)
    ) {
      return { createdAt, id };
    }
  } catch {
    // Reported below.
  }
  throw invalid("invalid cursor", [{ path: "cursor", message: "not a cursor this server issued" }]);
}
