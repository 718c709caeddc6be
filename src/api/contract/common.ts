import { z } from "@hono/zod-openapi";
import { ERROR_STATUS, type ErrorCode } from "../../vocabulary.js";

// The pieces every route definition (src/api/contract/*-routes.ts) is built
// from. Those definitions are the one source of the OpenAPI document
// (src/api/openapi.ts), of the validators the routes run, and of the types
// their handlers must return.

/** SPEC.md section 3's error body; the optional fields belong to particular codes. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      reason: z.string().optional().openapi({ description: "401 only: which check failed" }),
      status: z
        .string()
        .optional()
        .openapi({ description: "409 not_cancellable, not_resumable: the job's status" }),
      resumed_by: z
        .string()
        .optional()
        .openapi({ description: "409 conflict on resume: the job that already resumed it" }),
      accepted_chain_ids: z
        .array(z.number().int())
        .optional()
        .openapi({ description: "401 wrong_chain: the chains this server accepts" }),
      details: z
        .array(z.object({ path: z.string(), message: z.string() }))
        .optional()
        .openapi({ description: "400 only: one entry per field problem" }),
    }),
  })
  .openapi("Error");

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });

/** A JSON response. */
export function ok<T extends z.ZodType>(description: string, schema: T) {
  return { description, content: json(schema) };
}

/** The error responses a route can give, one entry per HTTP status, naming the codes behind it. */
export function errors<const C extends readonly ErrorCode[]>(
  ...codes: C
): { [S in (typeof ERROR_STATUS)[C[number]]]: ErrorResponse } {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    byStatus.set(ERROR_STATUS[code], [...(byStatus.get(ERROR_STATUS[code]) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, names]) => [status, ok(names.join(", "), ErrorBody)]),
  ) as { [S in (typeof ERROR_STATUS)[C[number]]]: ErrorResponse };
}

type ErrorResponse = ReturnType<typeof ok<typeof ErrorBody>>;

/** A JSON request body, validated by the route (after `jsonBody`'s framing checks). */
export function body<T extends z.ZodType>(schema: T, required = true) {
  return { required, content: json(schema) };
}

export const bearer = [{ bearer: [] }];
/** Public operations say so: no security requirement applies to them. */
export const publicRoute: { [name: string]: string[] }[] = [];

/**
 * A job's or webhook's id. Any string is accepted here: an id that is not a
 * UUID names nothing, so it is a 404 from the handler (SPEC.md), not a 400.
 */
export function idParam(what: string) {
  return z.object({
    id: z.string().openapi({ format: "uuid", description: `the ${what}'s id` }),
  });
}

export const timestamp = z.string().openapi({ format: "date-time" });
export const nullableTimestamp = timestamp.nullable();
