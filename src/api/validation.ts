import type { Context, MiddlewareHandler } from "hono";
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

/** A schema's refusal as a 400 naming each field; `what` names a problem without a path. */
function invalidFrom(error: z.ZodError, what: string): ApiError {
  const details = error.issues.slice(0, 50).map((issue) => ({
    path: issue.path.map(String).join(".") || what,
    message: issue.message,
  }));
  return invalid(`invalid ${what}`, details);
}

const TARGET_NAMES: Record<string, string> = { json: "body", query: "query", param: "path" };

/**
 * The routes' validators (from their definitions in src/api/contract) report
 * through here, so a refusal is the same 400 `invalid_request` with `details`
 * as everywhere else.
 */
export function validationHook(result: {
  success: boolean;
  target: string;
  error?: z.ZodError;
}): void {
  if (result.success || result.error === undefined) return;
  throw invalidFrom(result.error, TARGET_NAMES[result.target] ?? result.target);
}

/**
 * The framing checks of a JSON body, run before the route's validator (as
 * route middleware): the content type, the nesting depth (before any
 * recursive parse), valid JSON. An `optional` body may be absent; it is then
 * validated as `{}`.
 */
export function jsonBody(options: { optional?: boolean } = {}): MiddlewareHandler {
  return async function checkJsonBody(c, next) {
    const value = await readJson(c, options);
    // The validator parses the text hono cached (readJson read it). An absent
    // body sent as JSON is read as `{}`; one sent without a content type is
    // read as empty (blank text is none), which the route's validator takes
    // as `{}` too. hono types its cache as values, though it holds promises.
    if (value === undefined) {
      const asJson = JSON_TYPE.test(c.req.header("content-type") ?? "");
      (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(asJson ? "{}" : "");
    }
    await next();
  };
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b/i;

/**
 * The request's JSON body. A body that is present must be JSON with a JSON
 * content type, nested at most MAX_JSON_DEPTH levels; `optional` allows it
 * to be absent (undefined).
 */
async function readJson(c: Context, options: { optional?: boolean } = {}): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") {
    if (options.optional) return undefined;
    throw invalid("a JSON body is required", [{ path: "body", message: "required" }]);
  }
  const type = c.req.header("content-type") ?? "";
  if (!JSON_TYPE.test(type)) {
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
