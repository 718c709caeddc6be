import { OpenAPIHono } from "@hono/zod-openapi";
import type { Database } from "../db/connection.js";
import type { Metrics } from "../metrics.js";
import * as routes from "./contract/operations-routes.js";
import { buildOpenApi } from "./openapi.js";

export interface OperationsDeps {
  database: Database;
  metrics: Metrics;
  instance: string;
  role: string;
  runningJobs: () => number;
  isDraining: () => boolean;
  /** How long /healthz waits for the database before calling it down. */
  dbTimeoutMs?: number;
}

/** `GET /healthz`: 200 when serving; 503 while draining or when the database does not answer. */
export function operationsRoutes(deps: OperationsDeps) {
  const app = new OpenAPIHono();
  app.openapi(routes.health, async (c) => {
    const db = await probe(deps.database, deps.dbTimeoutMs ?? 2_000);
    const draining = deps.isDraining();
    const body = {
      status: draining
        ? ("draining" as const)
        : db === "ok"
          ? ("ok" as const)
          : ("unavailable" as const),
      db,
      instance: deps.instance,
      role: deps.role,
      running_jobs: deps.runningJobs(),
    };
    if (body.status === "ok") return c.json(body, 200);
    const message = draining ? "instance is draining" : "database is unreachable";
    return c.json({ ...body, error: { code: "unavailable" as const, message } }, 503);
  });
  let openapi: Record<string, unknown> | undefined;
  app.openapi(routes.openApiDocument, (c) => {
    openapi ??= buildOpenApi();
    return c.json(openapi, 200);
  });
  app.openapi(routes.metrics, async (c) => {
    c.header("content-type", deps.metrics.registry.contentType);
    return c.text(await deps.metrics.registry.metrics(), 200);
  });
  return app;
}

async function probe(database: Database, timeoutMs: number): Promise<"ok" | "error"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"error">((resolve) => {
    timer = setTimeout(() => resolve("error"), timeoutMs);
  });
  try {
    return await Promise.race([
      database.ping().then(
        () => "ok" as const,
        () => "error" as const,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
