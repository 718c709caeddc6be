import { OpenAPIRegistry, OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import type { RouteConfig } from "@hono/zod-openapi";
import { WEBHOOK_EVENT_TYPES } from "../vocabulary.js";
import { ACCOUNT_ROUTES } from "./contract/account-routes.js";
import { JOBS_ROUTES } from "./contract/jobs-routes.js";
import { WebhookEvent } from "./contract/models.js";
import { OPERATIONS_ROUTES } from "./contract/operations-routes.js";

/** Where the jobs, auth and webhook routes are mounted. */
export const API_PREFIX = "/api/v1";

/**
 * The OpenAPI 3.1 document of SPEC.md section 3 (`GET /openapi.json`),
 * generated from the route definitions in src/api/contract: the same ones
 * the routes validate requests with and type their answers by. It lists
 * every route whichever of them this instance serves (ROLE=runner serves
 * none), so it is the same on every instance.
 */
export function buildOpenApi(): Record<string, unknown> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "a session token (POST /api/v1/auth/siwe) or a service token",
  });
  registry.registerComponent("securitySchemes", "webhookSignature", {
    type: "apiKey",
    in: "header",
    name: "webhook-signature",
    description:
      "Standard Webhooks: v1,base64(HMAC-SHA256(webhook-id.webhook-timestamp.body)) keyed " +
      "with the whsec_ secret shown when the webhook was registered",
  });
  const register = (route: RouteConfig, prefix: string) => {
    const { middleware: _, ...documented } = route;
    registry.registerPath({ ...documented, path: prefix + route.path });
  };
  for (const route of [...JOBS_ROUTES, ...ACCOUNT_ROUTES]) register(route, API_PREFIX);
  for (const route of OPERATIONS_ROUTES) register(route, "");
  registry.registerWebhook({
    method: "post",
    path: "job-event",
    operationId: "jobEvent",
    security: [{ webhookSignature: [] }],
    summary: `What a registered webhook receives: ${WEBHOOK_EVENT_TYPES.join(", ")}`,
    description:
      "Signed as Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature); " +
      "retried with backoff for 24 h until a 2xx; a 410 disables the webhook.",
    request: { body: { content: { "application/json": { schema: WebhookEvent } } } },
    responses: { 200: { description: "any 2xx: delivered" } },
  });
  const doc = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "quench",
      version: "1",
      description: "Runs jobs on remote GPU providers and stops them the moment someone asks.",
      license: { name: "MIT", identifier: "MIT" },
    },
    servers: [{ url: "/" }],
    tags: [
      { name: "jobs", description: "submit, watch, cancel and resume jobs" },
      { name: "auth", description: "Sign-In with Ethereum" },
      { name: "webhooks", description: "job endings, pushed to your URL" },
      { name: "operations", description: "health, metrics, this document, the dashboard" },
    ],
  });
  for (const name of REQUEST_SCHEMAS) defaultsIntoDescriptions(doc.components?.schemas?.[name]);
  return doc as unknown as Record<string, unknown>;
}

/** The request bodies' component names (the `.openapi(name)` of src/api/schemas.ts). */
const REQUEST_SCHEMAS = [
  "SubmitRequest",
  "CancelRequest",
  "BulkCancelRequest",
  "SiweRequest",
  "WebhookRequest",
];

/**
 * A field the server fills in when it is absent is optional to the client,
 * but openapi-typescript (by default) makes every property with a `default`
 * required, so a generated client could not leave `depends_on` out. In
 * request bodies the default is said in the description instead.
 */
function defaultsIntoDescriptions(schema: unknown): void {
  if (typeof schema !== "object" || schema === null) return;
  const node = schema as Record<string, unknown>;
  if ("default" in node) {
    const said = `default: ${JSON.stringify(node.default)}`;
    node.description =
      typeof node.description === "string" ? `${node.description} (${said})` : said;
    delete node.default;
  }
  for (const value of Object.values(node)) defaultsIntoDescriptions(value);
}
