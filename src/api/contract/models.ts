import { z } from "@hono/zod-openapi";
import type * as Wire from "../../client/types.js";
import { EXECUTION_STATUSES, JOB_STATUSES, WEBHOOK_EVENT_TYPES } from "../../vocabulary.js";
import { nullableTimestamp, timestamp } from "./common.js";

// What the API answers with (SPEC.md section 3), as schemas: the document
// lists them under components.schemas, and the routes' handlers must return
// them. The published client writes the same shapes out by hand (it imports
// nothing of the server's); the checks at the end fail to compile if the two
// ever disagree.

/**
 * Any JSON value: inputs, outputs, metadata. A parsed body holds nothing
 * else, so accepting anything is exact; it is typed as `JsonValue` and
 * documented as `{}` (not as a recursive schema, which neither
 * zod-to-openapi nor openapi-fetch's types can follow).
 */
export const JsonValue = z
  .unknown()
  .openapi("JsonValue", { description: "any JSON value" }) as unknown as z.ZodType<
  Wire.JsonValue,
  Wire.JsonValue
>;

/**
 * A value always present in an answer, of any JSON type (null included).
 * Refusing `undefined` is what makes the document list it as required.
 */
const present = (description: string) =>
  z
    .unknown()
    .refine((v): boolean => v !== undefined)
    .openapi({ description });

const ErrorInfo = z
  .object({ code: z.string(), message: z.string() })
  .openapi({ description: "why a job or execution failed" });

const RemoteStop = z
  .object({
    requested_at: timestamp,
    confirmed_at: nullableTimestamp,
    outcome: z.enum(["confirmed", "requested", "already_finished", "failed"]),
  })
  .openapi({
    description: "Remote-queue kinds: how the provider's own stop went once our side stopped.",
  });

const ExecutionUsage = z
  .object({
    gpu_ms: z.number().int(),
    source: z.enum(["provider", "wall_clock"]),
    cost_usd: z.number().nullable(),
  })
  .openapi("ExecutionUsage", {
    description: "GPU time used: billed by the provider where it reports it, else wall clock.",
  });

export const Execution = z
  .object({
    id: z.uuid(),
    key: z.string(),
    provider: z.string(),
    model: z.string(),
    status: z.enum(EXECUTION_STATUSES),
    depends_on: z.array(z.string()),
    started_at: nullableTimestamp,
    finished_at: nullableTimestamp,
    output: present("the output, whole or (partial: true) as far as it got; null before any"),
    partial: z.boolean(),
    error: ErrorInfo.nullable(),
    remote_id: z.string().nullable(),
    resumed: z
      .boolean()
      .openapi({ description: "carried over, completed, from the job this one resumes" }),
    progress: present("the latest structured progress report (process), else null"),
    gpu_released_at: nullableTimestamp.openapi({
      description: "gpu_check: when nvidia-smi showed the execution's GPU memory freed",
    }),
    remote_stop: RemoteStop.nullable(),
    usage: ExecutionUsage,
  })
  .openapi("Execution");

export const Job = z
  .object({
    id: z.uuid(),
    owner: z.string().openapi({ description: "0x… wallet address or service:<sub>" }),
    status: z.enum(JOB_STATUSES),
    created_at: timestamp,
    started_at: nullableTimestamp,
    finished_at: nullableTimestamp,
    deadline_at: nullableTimestamp,
    cancelled_at: nullableTimestamp,
    cancelled_by: z.string().nullable(),
    cancel_reason: z.string().nullable(),
    stopped_at: nullableTimestamp,
    attempt: z.number().int(),
    instance: z.string().nullable(),
    error: ErrorInfo.nullable(),
    metadata: z.record(z.string(), z.unknown()),
    queue_position: z.number().int().nullable().openapi({
      description: "queued jobs only: 1 + the queued jobs claimed before it",
    }),
    resumed_from: z.uuid().nullable(),
    resumed_by: z.uuid().nullable(),
    usage: z
      .object({ gpu_ms: z.number().int(), cost_usd: z.number().nullable() })
      .openapi({ description: "The executions' GPU time summed; cost_usd sums the priced ones." }),
    executions: z.array(Execution),
  })
  .openapi("Job");

export const JobPage = z
  .object({ jobs: z.array(Job), next_cursor: z.string().nullable() })
  .openapi("JobPage");

export const JobEvent = z
  .object({
    at: timestamp,
    type: z.string(),
    actor: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi("JobEvent");

export const CancelResponse = z
  .object({
    ok: z.literal(true),
    job_id: z.uuid(),
    previous_status: z.enum(JOB_STATUSES),
    new_status: z.literal("cancelled"),
    context_cancelled: z.boolean(),
    executions_cancelled: z.number().int(),
    cancelled_at: timestamp,
    stopped_at: nullableTimestamp,
  })
  .openapi("CancelResponse");

export const BulkCancelResponse = z
  .object({
    results: z.array(
      z.object({
        job_id: z.string(),
        ok: z.boolean(),
        previous_status: z.enum(JOB_STATUSES).nullable(),
        error: z.object({ code: z.string(), message: z.string() }).optional(),
      }),
    ),
    cancelled: z.number().int(),
  })
  .openapi("BulkCancelResponse");

export const Health = z
  .object({
    status: z.enum(["ok", "draining", "unavailable"]),
    db: z.enum(["ok", "error"]),
    instance: z.string(),
    role: z.string(),
    running_jobs: z.number().int(),
  })
  .openapi("Health");

export const Unhealthy = Health.extend({
  error: z.object({ code: z.literal("unavailable"), message: z.string() }),
}).openapi("Unhealthy");

export const Nonce = z.object({ nonce: z.string(), expires_at: timestamp }).openapi("Nonce");

export const Session = z
  .object({
    token: z.string(),
    address: z.custom<`0x${string}`>().openapi({ type: "string", pattern: "^0x[0-9a-fA-F]{40}$" }),
    expires_at: timestamp,
  })
  .openapi("Session");

const webhookEvents = z.array(z.enum(WEBHOOK_EVENT_TYPES));

export const Webhook = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: webhookEvents,
    owner: z.string().nullable().openapi({ description: "null: every job (jobs:admin)" }),
    created_at: timestamp,
    disabled_at: nullableTimestamp.openapi({ description: "set when the receiver answered 410" }),
  })
  .openapi("Webhook");

export const NewWebhook = Webhook.extend({
  secret: z.string().openapi({ description: "whsec_…: shown only in this answer" }),
}).openapi("NewWebhook");

export const WebhookList = z.object({ webhooks: z.array(Webhook) }).openapi("WebhookList");

export const Deliveries = z
  .object({
    deliveries: z.array(
      z.object({
        event_id: z.string(),
        type: z.enum(WEBHOOK_EVENT_TYPES),
        job_id: z.uuid(),
        attempt: z.number().int(),
        status_code: z.number().int().nullable(),
        error: z.string().nullable(),
        attempted_at: timestamp,
        delivered_at: nullableTimestamp,
        next_attempt_at: nullableTimestamp,
      }),
    ),
  })
  .openapi("Deliveries");

/** The body of every webhook delivery (SPEC.md section 3, Webhooks). */
export const WebhookEvent = z
  .object({
    type: z.enum(WEBHOOK_EVENT_TYPES),
    timestamp,
    data: Job.extend({
      cancel_to_stop_ms: z
        .number()
        .int()
        .optional()
        .openapi({ description: "job.stopped only: from the cancel to the stop, in ms" }),
    }),
  })
  .openapi("WebhookEvent");

// The published client's types, held to these schemas.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const clientAgrees: [
  Same<z.output<typeof Job>, Wire.Job>,
  Same<z.output<typeof Execution>, Wire.Execution>,
  Same<z.output<typeof JobPage>, Wire.JobPage>,
  Same<z.output<typeof JobEvent>, Wire.JobEvent>,
  Same<z.output<typeof CancelResponse>, Wire.CancelResponse>,
  Same<z.output<typeof BulkCancelResponse>, Wire.BulkCancelResponse>,
  Same<z.output<typeof Health>, Wire.Health>,
  Same<z.output<typeof Session>, Wire.Session>,
] = [true, true, true, true, true, true, true, true];
void clientAgrees;
