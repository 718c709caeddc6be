import { createRoute, z } from "@hono/zod-openapi";
import { ok, publicRoute } from "./common.js";
import { Health, Unhealthy } from "./models.js";

// The operations endpoints, at the root (SPEC.md section 3).

export const health = createRoute({
  operationId: "getHealth",
  tags: ["operations"],
  method: "get",
  path: "/healthz",
  summary: "Health: 503 while draining or when the database is unreachable",
  security: publicRoute,
  responses: {
    200: ok("serving", Health),
    503: ok("draining, or the database is unreachable", Unhealthy),
  },
});

export const metrics = createRoute({
  operationId: "getMetrics",
  tags: ["operations"],
  method: "get",
  path: "/metrics",
  summary: "Prometheus metrics",
  security: publicRoute,
  responses: {
    200: {
      description: "the text exposition format",
      content: { "text/plain": { schema: z.string() } },
    },
  },
});

export const openApiDocument = createRoute({
  operationId: "getOpenApiDocument",
  tags: ["operations"],
  method: "get",
  path: "/openapi.json",
  summary: "This document",
  security: publicRoute,
  responses: {
    200: ok("OpenAPI 3.1", z.record(z.string(), z.unknown())),
  },
});

/** Served by the server entry (src/server.ts mounts the dashboard), not by src/api/app.ts. */
export const dashboard = createRoute({
  operationId: "getDashboard",
  tags: ["operations"],
  method: "get",
  path: "/",
  summary: "The dashboard (HTML): sign in, your jobs live, Cancel",
  security: publicRoute,
  responses: {
    200: { description: "the page", content: { "text/html": { schema: z.string() } } },
  },
});

export const OPERATIONS_ROUTES = [health, metrics, openApiDocument, dashboard];
