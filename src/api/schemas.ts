import { z } from "@hono/zod-openapi";
import type { SubmitRequest } from "../client/types.js";
import { JOB_STATUSES, WEBHOOK_EVENT_TYPES } from "../vocabulary.js";
import { JsonValue } from "./contract/models.js";

/** Free text stored in a `text` column: Postgres refuses NUL there, so we refuse it first. */
const text = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !s.includes("\u0000"), "must not contain the NUL character");

const KEY = /^[a-z0-9_-]{1,64}$/;
const DAY_MS = 24 * 3600_000;

const execution = z.strictObject({
  key: z.string().regex(KEY, "must match [a-z0-9_-]{1,64}"),
  provider: text(64).pipe(z.string().min(1)),
  model: text(256).pipe(z.string().min(1)),
  input: JsonValue.default({}),
  depends_on: z.array(z.string()).max(64).default([]),
  timeout_ms: z
    .number()
    .int()
    .min(1)
    .max(7 * DAY_MS)
    .optional(),
  retries: z.number().int().min(0).max(10).optional(),
});

/** `POST /jobs` (SPEC.md section 3): 1–64 executions, unique keys, dependencies that exist and form no cycle. */
export const submitSchema = z
  .strictObject({
    executions: z.array(execution).min(1).max(64),
    timeout_ms: z
      .number()
      .int()
      .min(1)
      .max(7 * DAY_MS)
      .default(900_000),
    max_parallel: z.number().int().min(1).max(64).default(8),
    metadata: z.record(z.string(), JsonValue).default({}),
    owner: text(64).optional(),
  })
  .superRefine((body, ctx) => {
    const keys = new Map<string, number>();
    body.executions.forEach((e, i) => {
      if (keys.has(e.key)) {
        ctx.addIssue({
          code: "custom",
          path: ["executions", i, "key"],
          message: `duplicate key ${e.key}`,
        });
      }
      keys.set(e.key, i);
    });
    body.executions.forEach((e, i) => {
      e.depends_on.forEach((dep, j) => {
        if (dep === e.key) {
          ctx.addIssue({
            code: "custom",
            path: ["executions", i, "depends_on", j],
            message: "an execution cannot depend on itself",
          });
        } else if (!keys.has(dep)) {
          ctx.addIssue({
            code: "custom",
            path: ["executions", i, "depends_on", j],
            message: `no execution has key ${dep}`,
          });
        }
      });
    });
    const cycle = findCycle(body.executions);
    if (cycle !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["executions"],
        message: `depends_on forms a cycle: ${cycle.join(" → ")}`,
      });
    }
  })
  .openapi("SubmitRequest");

export type SubmitBody = z.infer<typeof submitSchema>;

// The published client's `SubmitRequest` is written out by hand; these fail to
// compile if it and the schema that validates the body ever disagree.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const submitRequestMatchesSchema: Same<z.input<typeof submitSchema>, SubmitRequest> = true;
void submitRequestMatchesSchema;

/** A dependency cycle among the executions, as a list of keys, if there is one. */
function findCycle(executions: { key: string; depends_on: string[] }[]): string[] | undefined {
  const deps = new Map(executions.map((e) => [e.key, e.depends_on]));
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];
  const visit = (key: string): string[] | undefined => {
    if (state.get(key) === "done") return undefined;
    if (state.get(key) === "visiting") return [...path.slice(path.indexOf(key)), key];
    state.set(key, "visiting");
    path.push(key);
    for (const dep of deps.get(key) ?? []) {
      if (!deps.has(dep)) continue;
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(key, "done");
    return undefined;
  };
  for (const e of executions) {
    const cycle = visit(e.key);
    if (cycle) return cycle;
  }
  return undefined;
}

export const cancelSchema = z
  .strictObject({ reason: text(500).optional() })
  .openapi("CancelRequest");

export const bulkCancelSchema = z
  .strictObject({
    job_ids: z.array(z.string().max(100)).min(1).max(1000),
    reason: text(500).optional(),
  })
  .openapi("BulkCancelRequest");

export const listQuerySchema = z.object({
  status: z.enum(JOB_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
  /** Admins only: one owner's jobs. */
  owner: text(64).optional(),
});

export const siweSchema = z
  .strictObject({
    message: text(8192)
      .pipe(z.string().min(1))
      .openapi({ description: "an EIP-4361 message, as the wallet signed it" }),
    signature: z.string().max(20_000),
  })
  .openapi("SiweRequest");

export const webhookSchema = z
  .strictObject({
    url: z.string().min(1).max(2_000),
    events: z
      .array(z.enum(WEBHOOK_EVENT_TYPES))
      .min(1)
      .max(WEBHOOK_EVENT_TYPES.length)
      .refine((e) => new Set(e).size === e.length, "events must not repeat")
      .optional()
      .openapi({ description: "default: every event type" }),
    owner: z.string().min(1).max(200).nullable().optional().openapi({
      description: "whose jobs: a wallet address or service:<sub>; null (jobs:admin) for every job",
    }),
  })
  .openapi("WebhookRequest");

export const uuid = z.uuid();

export const idempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, "must be 1–255 visible ASCII characters");

export const submitHeaders = z.object({
  "Idempotency-Key": idempotencyKey.optional().openapi({
    description: "a retry with the same key returns the job the first request created",
  }),
});
