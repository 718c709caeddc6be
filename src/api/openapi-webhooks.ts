import { WEBHOOK_EVENT_TYPES } from "../vocabulary.js";

type Schema = Record<string, unknown>;

/** What the paths below borrow from the main document's builder (src/api/openapi.ts). */
export interface DocParts {
  ref(name: string): Schema;
  json(schema: Schema): Schema;
  ok(description: string, schema: Schema): Schema;
  errors(...codes: string[]): Record<string, Schema>;
  bearer: Schema[];
  jobId: Schema;
  timestamp: Schema;
}

/** Webhooks and resume (SPEC.md section 3), kept apart so openapi.ts stays readable. */
export function webhookPaths(p: DocParts): {
  schemas: Record<string, Schema>;
  paths: Record<string, Schema>;
} {
  const webhookId = { ...p.jobId, description: "the webhook's id" };
  const events = { type: "array", items: { enum: [...WEBHOOK_EVENT_TYPES] } };
  const schemas = {
    Webhook: {
      type: "object",
      required: ["id", "url", "events", "owner", "created_at", "disabled_at"],
      properties: {
        id: { type: "string", format: "uuid" },
        url: { type: "string" },
        events,
        owner: { type: ["string", "null"], description: "null: every job (jobs:admin)" },
        created_at: { type: "string", format: "date-time" },
        disabled_at: { ...p.timestamp, description: "set when the receiver answered 410" },
      },
    },
    WebhookRequest: {
      type: "object",
      required: ["url"],
      additionalProperties: false,
      properties: {
        url: { type: "string", maxLength: 2000 },
        events: { ...events, minItems: 1, uniqueItems: true },
        owner: { type: ["string", "null"] },
      },
    },
  };
  const paths = {
    "/api/v1/jobs/{id}/resume": {
      post: {
        summary: "A new job that continues a stopped one: completed executions are carried over",
        security: p.bearer,
        parameters: [p.jobId],
        responses: {
          201: p.ok("the new job", p.ref("Job")),
          ...p.errors("unauthenticated", "forbidden", "not_found", "not_resumable"),
        },
      },
    },
    "/api/v1/webhooks": {
      post: {
        summary: "Register a webhook; its secret is shown only in this answer",
        security: p.bearer,
        requestBody: { required: true, ...p.json(p.ref("WebhookRequest")) },
        responses: {
          201: p.ok("registered", {
            allOf: [
              p.ref("Webhook"),
              { type: "object", required: ["secret"], properties: { secret: { type: "string" } } },
            ],
          }),
          ...p.errors("invalid_request", "unauthenticated", "forbidden"),
        },
      },
      get: {
        summary: "The webhooks you registered (every one for jobs:admin); never a secret",
        security: p.bearer,
        responses: {
          200: p.ok("webhooks", {
            type: "object",
            required: ["webhooks"],
            properties: { webhooks: { type: "array", items: p.ref("Webhook") } },
          }),
          ...p.errors("unauthenticated", "forbidden"),
        },
      },
    },
    "/api/v1/webhooks/{id}": {
      delete: {
        summary: "Delete a webhook with its pending events",
        security: p.bearer,
        parameters: [webhookId],
        responses: { 204: { description: "deleted" }, ...p.errors("unauthenticated", "not_found") },
      },
    },
    "/api/v1/webhooks/{id}/deliveries": {
      get: {
        summary: "One row per delivery attempt, newest first",
        security: p.bearer,
        parameters: [webhookId],
        responses: {
          200: p.ok("attempts", {
            type: "object",
            required: ["deliveries"],
            properties: {
              deliveries: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    event_id: { type: "string" },
                    type: { enum: [...WEBHOOK_EVENT_TYPES] },
                    job_id: { type: "string", format: "uuid" },
                    attempt: { type: "integer" },
                    status_code: { type: ["integer", "null"] },
                    error: { type: ["string", "null"] },
                    attempted_at: { type: "string", format: "date-time" },
                    delivered_at: p.timestamp,
                    next_attempt_at: p.timestamp,
                  },
                },
              },
            },
          }),
          ...p.errors("unauthenticated", "not_found"),
        },
      },
    },
  };
  return { schemas, paths };
}
