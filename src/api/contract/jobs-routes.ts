import { createRoute, z } from "@hono/zod-openapi";
import {
  bulkCancelSchema,
  cancelSchema,
  listQuerySchema,
  submitHeaders,
  submitSchema,
} from "../schemas.js";
import { jsonBody } from "../validation.js";
import { bearer, body, errors, idParam, ok } from "./common.js";
import { BulkCancelResponse, CancelResponse, Job, JobEvent, JobPage } from "./models.js";

// The jobs API of SPEC.md section 3. Paths are relative to /api/v1.

const IdParam = idParam("job");

export const submitJob = createRoute({
  operationId: "submitJob",
  tags: ["jobs"],
  method: "post",
  path: "/jobs",
  summary: "Submit a job",
  security: bearer,
  middleware: jsonBody(),
  request: { headers: submitHeaders, body: body(submitSchema) },
  responses: {
    201: ok("created", Job),
    200: ok("the job an earlier request with this Idempotency-Key created", Job),
    ...errors(
      "invalid_request",
      "unauthenticated",
      "forbidden",
      "conflict",
      "payload_too_large",
      "rate_limited",
      "unavailable",
    ),
  },
});

export const listJobs = createRoute({
  operationId: "listJobs",
  tags: ["jobs"],
  method: "get",
  path: "/jobs",
  summary: "Your jobs (all jobs for jobs:admin), newest first",
  security: bearer,
  request: { query: listQuerySchema },
  responses: {
    200: ok("a page; pass next_cursor as cursor for the next", JobPage),
    ...errors("invalid_request", "unauthenticated", "forbidden", "unavailable"),
  },
});

export const getJob = createRoute({
  operationId: "getJob",
  tags: ["jobs"],
  method: "get",
  path: "/jobs/{id}",
  summary: "One job",
  security: bearer,
  request: { params: IdParam },
  responses: {
    200: ok("the job", Job),
    ...errors("unauthenticated", "forbidden", "not_found", "unavailable"),
  },
});

export const listJobEvents = createRoute({
  operationId: "listJobEvents",
  tags: ["jobs"],
  method: "get",
  path: "/jobs/{id}/events",
  summary: "The job's audit trail",
  security: bearer,
  request: { params: IdParam },
  responses: {
    200: ok("events, oldest first", z.array(JobEvent)),
    ...errors("unauthenticated", "forbidden", "not_found", "unavailable"),
  },
});

export const cancelJob = createRoute({
  operationId: "cancelJob",
  tags: ["jobs"],
  method: "post",
  path: "/jobs/{id}/cancel",
  summary: "Cancel a job; waits up to CANCEL_ACK_MS for its runner's stop acknowledgement",
  security: bearer,
  middleware: jsonBody({ optional: true }),
  request: { params: IdParam, body: body(cancelSchema, false) },
  responses: {
    200: ok("cancelled", CancelResponse),
    ...errors(
      "invalid_request",
      "unauthenticated",
      "forbidden",
      "not_found",
      "not_cancellable",
      "payload_too_large",
      "rate_limited",
      "unavailable",
    ),
  },
});

export const cancelJobs = createRoute({
  operationId: "cancelJobs",
  tags: ["jobs"],
  method: "post",
  path: "/jobs/cancel",
  summary: "Cancel up to 1,000 jobs; each one's outcome",
  security: bearer,
  middleware: jsonBody(),
  request: { body: body(bulkCancelSchema) },
  responses: {
    200: ok("each job's outcome", BulkCancelResponse),
    ...errors(
      "invalid_request",
      "unauthenticated",
      "forbidden",
      "payload_too_large",
      "rate_limited",
      "unavailable",
    ),
  },
});

export const resumeJob = createRoute({
  operationId: "resumeJob",
  tags: ["jobs"],
  method: "post",
  path: "/jobs/{id}/resume",
  summary: "A new job that continues a stopped one: completed executions are carried over",
  security: bearer,
  request: { params: IdParam },
  responses: {
    201: ok("the new job", Job),
    ...errors(
      "unauthenticated",
      "forbidden",
      "not_found",
      "not_resumable",
      "conflict",
      "unavailable",
    ),
  },
});

export const streamJob = createRoute({
  operationId: "streamJob",
  tags: ["jobs"],
  method: "get",
  path: "/jobs/{id}/stream",
  summary: "Server-Sent Events: job, execution, progress, end (then the stream closes)",
  security: bearer,
  request: {
    params: IdParam,
    headers: z.object({
      "Last-Event-ID": z
        .string()
        .optional()
        .openapi({ description: "sent by a reconnecting EventSource" }),
    }),
  },
  responses: {
    200: {
      description: "an event stream (`id:` on every event, `retry: 3000` on the first)",
      content: { "text/event-stream": { schema: z.string() } },
    },
    204: { description: "a reconnect (Last-Event-ID) to a job that has ended: stop" },
    ...errors("unauthenticated", "forbidden", "not_found", "unavailable"),
  },
});

export const JOBS_ROUTES = [
  submitJob,
  listJobs,
  getJob,
  listJobEvents,
  cancelJob,
  cancelJobs,
  resumeJob,
  streamJob,
];
