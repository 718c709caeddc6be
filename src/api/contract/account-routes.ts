import { createRoute } from "@hono/zod-openapi";
import { siweSchema, webhookSchema } from "../schemas.js";
import { jsonBody } from "../validation.js";
import { bearer, body, errors, idParam, ok, publicRoute } from "./common.js";
import { Deliveries, NewWebhook, Nonce, Session, WebhookList } from "./models.js";

// Sign-in and webhooks (SPEC.md section 3). Paths are relative to /api/v1.

export const getNonce = createRoute({
  operationId: "getNonce",
  tags: ["auth"],
  method: "get",
  path: "/auth/nonce",
  summary: "A single-use SIWE nonce, valid 10 minutes",
  security: publicRoute,
  responses: {
    200: ok("a nonce to put in the message", Nonce),
    ...errors("rate_limited", "unavailable"),
  },
});

export const signIn = createRoute({
  operationId: "signInWithEthereum",
  tags: ["auth"],
  method: "post",
  path: "/auth/siwe",
  summary: "Sign in with Ethereum: a session token for the message's address",
  security: publicRoute,
  middleware: jsonBody(),
  request: { body: body(siweSchema) },
  responses: {
    200: ok("a session", Session),
    ...errors(
      "invalid_request",
      "unauthenticated",
      "payload_too_large",
      "rate_limited",
      "unavailable",
    ),
  },
});

const WebhookId = idParam("webhook");

export const createWebhook = createRoute({
  operationId: "createWebhook",
  tags: ["webhooks"],
  method: "post",
  path: "/webhooks",
  summary: "Register a webhook; its secret is shown only in this answer",
  security: bearer,
  middleware: jsonBody(),
  request: { body: body(webhookSchema) },
  responses: {
    201: ok("registered", NewWebhook),
    ...errors(
      "invalid_request",
      "unauthenticated",
      "forbidden",
      "payload_too_large",
      "unavailable",
    ),
  },
});

export const listWebhooks = createRoute({
  operationId: "listWebhooks",
  tags: ["webhooks"],
  method: "get",
  path: "/webhooks",
  summary: "The webhooks you registered (every one for jobs:admin); never a secret",
  security: bearer,
  responses: {
    200: ok("webhooks", WebhookList),
    ...errors("unauthenticated", "forbidden", "unavailable"),
  },
});

export const deleteWebhook = createRoute({
  operationId: "deleteWebhook",
  tags: ["webhooks"],
  method: "delete",
  path: "/webhooks/{id}",
  summary: "Delete a webhook with its pending events",
  security: bearer,
  request: { params: WebhookId },
  responses: {
    204: { description: "deleted" },
    ...errors("unauthenticated", "forbidden", "not_found", "unavailable"),
  },
});

export const listDeliveries = createRoute({
  operationId: "listWebhookDeliveries",
  tags: ["webhooks"],
  method: "get",
  path: "/webhooks/{id}/deliveries",
  summary: "One row per delivery attempt, newest first",
  security: bearer,
  request: { params: WebhookId },
  responses: {
    200: ok("attempts", Deliveries),
    ...errors("unauthenticated", "forbidden", "not_found", "unavailable"),
  },
});

export const ACCOUNT_ROUTES = [
  getNonce,
  signIn,
  createWebhook,
  listWebhooks,
  deleteWebhook,
  listDeliveries,
];
