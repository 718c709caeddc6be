import type { Context } from "hono";
import type { z } from "zod";
import { ApiError } from "./errors.js";
import { MAX_JSON_DEPTH, nestedDeeperThan } from "./json-depth.js";

export interface FieldProblem {
  path: string;
  message: string;
}

/** 400 `invalid_request` listing every field problem (SPEC.md section 3's `details`). */
export function invalid(message: string, details: FieldProblem[]): ApiError {
  return new ApiError("invalid_request", message, { details });
}

/** Validates `value`; the problems become a 400 naming each field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = result.error.issues.slice(0, 50).map((issue) => ({
    path: issue.path.map(String).join(".") || what,
    message: issue.message,
  }));
  throw invalid(`invalid ${what}`, details);
}

/**
 * The request's JSON body. A body that is present must be JSON with a JSON
 * content type, nested at most MAX_JSON_DEPTH levels; `optional` allows it
 * to be absent (undefined).
 */
export async function readJson(c: Context, options: { optional?: boolean } = {}): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") {
    if (options.optional) return undefined;
    throw invalid("a JSON body is required", [{ path: "body", message: "required" }]);
  }
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/(?:[\w.+-]+\+)?json\b/i.test(type)) {
    throw invalid("the body must be sent as application/json", [
      {
        path: "content-type",
        message: `expected application/json, got ${type.slice(0, 100) || "nothing"}`,
      },
    ]);
  }
  if (nestedDeeperThan(text, MAX_JSON_DEPTH)) {
    throw invalid(`the body nests JSON deeper than ${MAX_JSON_DEPTH} levels`, [
      { path: "body", message: `nested deeper than ${MAX_JSON_DEPTH} levels` },
    ]);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalid("the body is not valid JSON", [
      { path: "body", message: (err as Error).message.slice(0, 200) },
    ]);
  }
}
