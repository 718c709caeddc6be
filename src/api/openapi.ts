import { z } from "zod";
import { EXECUTION_STATUSES, JOB_STATUSES } from "../vocabulary.js";
import { ERROR_STATUS } from "./errors.js";
import { type DocParts, webhookPaths } from "./openapi-webhooks.js";
import {
  bulkCancelSchema,
  cancelSchema,
  listQuerySchema,
  siweSchema,
  submitSchema,
} from "./schemas.js";

type Schema = Record<string, unknown>;

/**
 * The OpenAPI 3.1 document of SPEC.md section 3 (`GET /openapi.json`). Request
 * bodies come from the same zod schemas the routes validate with; recursive
 * parts (`$defs`) are lifted into `components.schemas`, where OpenAPI resolves refs.
 */
export function buildOpenApi(): Schema {
  const components: Record<string, Schema> = {};
  const fromZod = (name: string, schema: z.ZodType): Schema => {
    const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Schema;
    const {
      $schema: _,
      $defs,
      ...rest
    } = json as { $schema?: string; $defs?: Record<string, Schema> };
    const defs = Object.entries($defs ?? {});
    const lift = (text: string) =>
      defs.reduce(
        (t, [def]) =>
          t.replaceAll(
            `"#/$defs/${def}"`,
            `"#/components/schemas/${name}_${def.replace(/^_+/, "")}"`,
          ),
        text,
      );
    for (const [def, body] of defs) {
      components[`${name}_${def.replace(/^_+/, "")}`] = JSON.parse(lift(JSON.stringify(body)));
    }
    components[name] = JSON.parse(lift(JSON.stringify(rest)));
    return ref(name);
  };
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const json = (schema: Schema) => ({ content: { "application/json": { schema } } });
  const ok = (description: string, schema: Schema) => ({ description, ...json(schema) });
  const errors = (...codes: (keyof typeof ERROR_STATUS)[]) =>
    Object.fromEntries(codes.map((code) => [String(ERROR_STATUS[code]), ok(code, ref("Error"))]));
  const bearer = [{ bearer: [] }];
  const jobId = {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "string", format: "uuid" },
  };
  const timestamp = { type: ["string", "null"], format: "date-time" };

  Object.assign(components, {
    Error: {
      type: "object",
      required: ["error"],
      properties: {
        error: {
          type: "object",
          required: ["code", "message"],
          properties: {
            code: { enum: Object.keys(ERROR_STATUS) },
            message: { type: "string" },
            reason: { type: "string", description: "401 only: which check failed" },
            status: { type: "string", description: "409 not_cancellable only: the job's status" },
            details: {
              type: "array",
              items: {
                type: "object",
                properties: { path: { type: "string" }, message: { type: "string" } },
              },
            },
          },
        },
      },
    },
    Execution: {
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        key: { type: "string" },
        provider: { type: "string" },
        model: { type: "string" },
        status: { enum: [...EXECUTION_STATUSES] },
        depends_on: { type: "array", items: { type: "string" } },
        started_at: timestamp,
        finished_at: timestamp,
        output: {},
        partial: { type: "boolean" },
        error: { type: ["object", "null"] },
        remote_id: { type: ["string", "null"] },
        resumed: {
          type: "boolean",
          description: "carried over, completed, from the job this one resumes",
        },
        progress: { description: "the latest structured progress report (process), else null" },
        gpu_released_at: {
          ...timestamp,
          description: "gpu_check: when nvidia-smi showed the execution's GPU memory freed",
        },
        remote_stop: {
          type: ["object", "null"],
          description:
            "Remote-queue kinds: how the provider's own stop went once our side stopped.",
          properties: {
            requested_at: { type: "string", format: "date-time" },
            confirmed_at: timestamp,
            outcome: { enum: ["confirmed", "requested", "already_finished", "failed"] },
          },
        },
        usage: {
          type: "object",
          description:
            "GPU time used: billed by the provider where it reports it, else wall clock.",
          properties: {
            gpu_ms: { type: "integer" },
            source: { enum: ["provider", "wall_clock"] },
            cost_usd: { type: ["number", "null"] },
          },
        },
      },
    },
    Job: {
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        owner: { type: "string", description: "0x… wallet address or service:<sub>" },
        status: { enum: [...JOB_STATUSES] },
        created_at: { type: "string", format: "date-time" },
        started_at: timestamp,
        finished_at: timestamp,
        deadline_at: timestamp,
        cancelled_at: timestamp,
        cancelled_by: { type: ["string", "null"] },
        cancel_reason: { type: ["string", "null"] },
        stopped_at: timestamp,
        attempt: { type: "integer" },
        instance: { type: ["string", "null"] },
        error: { type: ["object", "null"] },
        metadata: { type: "object" },
        queue_position: {
          type: ["integer", "null"],
          description: "queued jobs only: 1 + the queued jobs claimed before it",
        },
        resumed_from: { type: ["string", "null"], format: "uuid" },
        resumed_by: { type: ["string", "null"], format: "uuid" },
        usage: {
          type: "object",
          description: "The executions' GPU time summed; cost_usd sums the priced ones.",
          properties: { gpu_ms: { type: "integer" }, cost_usd: { type: ["number", "null"] } },
        },
        executions: { type: "array", items: ref("Execution") },
      },
    },
  });

  const more = webhookPaths({
    ref,
    json,
    ok,
    errors: errors as DocParts["errors"],
    bearer,
    jobId,
    timestamp,
  });
  Object.assign(components, more.schemas);
  return {
    openapi: "3.1.0",
    info: {
      title: "quench",
      version: "1",
      description: "Runs jobs on remote GPU providers and stops them the moment someone asks.",
    },
    servers: [{ url: "/" }],
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
    paths: {
      "/api/v1/auth/nonce": {
        get: {
          summary: "A single-use SIWE nonce, valid 10 minutes",
          responses: {
            200: ok("nonce", {
              type: "object",
              properties: {
                nonce: { type: "string" },
                expires_at: { type: "string", format: "date-time" },
              },
            }),
            ...errors("rate_limited"),
          },
        },
      },
      "/api/v1/auth/siwe": {
        post: {
          summary: "Sign in with Ethereum: a session token for the message's address",
          requestBody: { required: true, ...json(fromZod("SiweRequest", siweSchema)) },
          responses: {
            200: ok("session", {
              type: "object",
              properties: {
                token: { type: "string" },
                address: { type: "string" },
                expires_at: { type: "string", format: "date-time" },
              },
            }),
            ...errors("invalid_request", "unauthenticated", "rate_limited", "unavailable"),
          },
        },
      },
      "/api/v1/jobs": {
        post: {
          summary: "Submit a job",
          security: bearer,
          parameters: [
            { name: "Idempotency-Key", in: "header", schema: { type: "string", maxLength: 255 } },
          ],
          requestBody: { required: true, ...json(fromZod("SubmitRequest", submitSchema)) },
          responses: {
            201: ok("created", ref("Job")),
            200: ok("the job an earlier request with this Idempotency-Key created", ref("Job")),
            ...errors(
              "invalid_request",
              "unauthenticated",
              "forbidden",
              "conflict",
              "payload_too_large",
              "rate_limited",
            ),
          },
        },
        get: {
          summary: "Your jobs (all jobs for jobs:admin), newest first",
          security: bearer,
          parameters: Object.entries(
            (
              z.toJSONSchema(listQuerySchema, { io: "input" }) as {
                properties: Record<string, Schema>;
              }
            ).properties,
          ).map(([name, schema]) => ({ name, in: "query", schema })),
          responses: {
            200: ok("a page", {
              type: "object",
              properties: {
                jobs: { type: "array", items: ref("Job") },
                next_cursor: { type: ["string", "null"] },
              },
            }),
            ...errors("invalid_request", "unauthenticated", "forbidden"),
          },
        },
      },
      "/api/v1/jobs/{id}": {
        get: {
          summary: "One job",
          security: bearer,
          parameters: [jobId],
          responses: {
            200: ok("the job", ref("Job")),
            ...errors("unauthenticated", "forbidden", "not_found"),
          },
        },
      },
      "/api/v1/jobs/{id}/cancel": {
        post: {
          summary: "Cancel a job; waits up to CANCEL_ACK_MS for its runner's stop acknowledgement",
          security: bearer,
          parameters: [jobId],
          requestBody: { required: false, ...json(fromZod("CancelRequest", cancelSchema)) },
          responses: {
            200: ok("cancelled", {
              type: "object",
              properties: {
                ok: { const: true },
                job_id: { type: "string" },
                previous_status: { enum: ["queued", "running"] },
                new_status: { const: "cancelled" },
                context_cancelled: { type: "boolean" },
                executions_cancelled: { type: "integer" },
                cancelled_at: { type: "string", format: "date-time" },
                stopped_at: timestamp,
              },
            }),
            ...errors(
              "invalid_request",
              "unauthenticated",
              "forbidden",
              "not_found",
              "not_cancellable",
              "rate_limited",
            ),
          },
        },
      },
      "/api/v1/jobs/cancel": {
        post: {
          summary: "Cancel up to 1,000 jobs",
          security: bearer,
          requestBody: { required: true, ...json(fromZod("BulkCancelRequest", bulkCancelSchema)) },
          responses: {
            200: ok("each job's outcome", {
              type: "object",
              properties: {
                results: {
                  type: "array",
                  items: {
                    type: "object",
                    properties: {
                      job_id: { type: "string" },
                      ok: { type: "boolean" },
                      previous_status: { type: ["string", "null"] },
                      error: { type: "object" },
                    },
                  },
                },
                cancelled: { type: "integer" },
              },
            }),
            ...errors("invalid_request", "unauthenticated", "forbidden", "rate_limited"),
          },
        },
      },
      "/api/v1/jobs/{id}/stream": {
        get: {
          summary: "Server-Sent Events: job, execution, progress, end (then the stream closes)",
          security: bearer,
          parameters: [jobId],
          responses: {
            200: {
              description: "an event stream",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
            204: { description: "a reconnect (Last-Event-ID) to a job that has ended: stop" },
            ...errors("unauthenticated", "forbidden", "not_found"),
          },
        },
      },
      "/api/v1/jobs/{id}/events": {
        get: {
          summary: "The audit trail",
          security: bearer,
          parameters: [jobId],
          responses: {
            200: ok("events, oldest first", {
              type: "array",
              items: {
                type: "object",
                properties: {
                  at: { type: "string", format: "date-time" },
                  type: { type: "string" },
                  actor: { type: ["string", "null"] },
                  data: { type: "object" },
                },
              },
            }),
            ...errors("unauthenticated", "forbidden", "not_found"),
          },
        },
      },
      ...more.paths,
      "/healthz": {
        get: {
          summary: "Health: 503 while draining or when the database is unreachable",
          responses: {
            200: ok("serving", { type: "object" }),
            503: ok("unavailable", { type: "object" }),
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          responses: {
            200: {
              description: "text exposition format",
              content: { "text/plain": { schema: { type: "string" } } },
            },
          },
        },
      },
      "/": {
        get: {
          summary: "The dashboard (HTML): wallet sign-in, your jobs live, Cancel",
          responses: {
            200: {
              description: "the page",
              content: { "text/html": { schema: { type: "string" } } },
            },
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          responses: { 200: ok("OpenAPI 3.1", { type: "object" }) },
        },
      },
    },
  };
}
