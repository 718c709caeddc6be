import { randomBytes } from "node:crypto";
import { getAddress, isAddress } from "viem";
import type { Db } from "../../db/connection.js";
import type { WebhookRow } from "../../db/schema.js";
import { listAttempts } from "../../db/webhook-attempts.js";
import { deleteWebhook, getWebhook, insertWebhook, listWebhooks } from "../../db/webhooks.js";
import { WEBHOOK_EVENT_TYPES } from "../../vocabulary.js";
import { checkWebhookUrl, UnsafeWebhookUrl, type UrlRules } from "../../webhooks/url-safety.js";
import { isAdmin, type Principal, requireScope } from "../auth/principal.js";
import * as routes from "../contract/account-routes.js";
import { ApiError } from "../errors.js";
import { iso } from "../job-view.js";
import { router } from "../router.js";
import { uuid } from "../schemas.js";
import { invalid } from "../validation.js";

/** `POST/GET/DELETE /webhooks`, `GET /webhooks/:id/deliveries` (SPEC.md section 3, Webhooks). */
export function webhookRoutes(deps: { db: Db; rules: UrlRules }) {
  const app = router();

  /** The webhook if this principal registered it (or is admin); 404 otherwise, revealing nothing. */
  async function ownWebhook(principal: Principal, id: string): Promise<WebhookRow> {
    const row = uuid.safeParse(id).success ? await getWebhook(deps.db, id) : undefined;
    if (row === undefined || (row.createdBy !== principal.owner && !isAdmin(principal))) {
      throw new ApiError("not_found", `webhook ${id} does not exist`);
    }
    return row;
  }

  app.openapi(routes.createWebhook, async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:read");
    const body = c.req.valid("json");
    const owner = ownerFor(principal, body.owner);
    const url = await checkWebhookUrl(body.url, deps.rules).catch((err: unknown) => {
      if (err instanceof UnsafeWebhookUrl) {
        throw invalid("the webhook URL is not allowed", [
          { path: "url", message: `the URL ${err.message}` },
        ]);
      }
      throw err;
    });
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const row = await insertWebhook(deps.db, {
      owner,
      createdBy: principal.owner,
      url: url.href,
      events: body.events ?? [...WEBHOOK_EVENT_TYPES],
      secret,
    });
    c.header("location", `/api/v1/webhooks/${row.id}`);
    return c.json({ ...webhookView(row), secret }, 201);
  });

  app.openapi(routes.listWebhooks, async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:read");
    const rows = await listWebhooks(deps.db, isAdmin(principal) ? undefined : principal.owner);
    return c.json({ webhooks: rows.map(webhookView) }, 200);
  });

  app.openapi(routes.deleteWebhook, async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:read");
    const row = await ownWebhook(principal, c.req.valid("param").id);
    await deleteWebhook(deps.db, row.id);
    return c.body(null, 204);
  });

  app.openapi(routes.listDeliveries, async (c) => {
    const principal = c.get("principal");
    requireScope(principal, "jobs:read");
    const row = await ownWebhook(principal, c.req.valid("param").id);
    const attempts = await listAttempts(deps.db, row.id);
    return c.json(
      {
        deliveries: attempts.map((a) => ({
          event_id: a.eventId,
          type: a.type,
          job_id: a.jobId,
          attempt: a.attempt,
          status_code: a.statusCode,
          error: a.error,
          attempted_at: a.at.toISOString(),
          delivered_at: iso(a.deliveredAt),
          next_attempt_at: iso(a.nextAttemptAt),
        })),
      },
      200,
    );
  });

  return app;
}

/** The webhook as the API shows it: never its secret. */
function webhookView(row: WebhookRow) {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    owner: row.owner,
    created_at: row.createdAt.toISOString(),
    disabled_at: iso(row.disabledAt),
  };
}

/** Own jobs by default; someone else's (or, as null, everyone's) only for jobs:admin. */
function ownerFor(principal: Principal, requested: string | null | undefined): string | null {
  if (requested === undefined || requested === principal.owner) return principal.owner;
  if (!isAdmin(principal)) {
    throw new ApiError("forbidden", "only jobs:admin may register a webhook for another owner");
  }
  if (requested === null) return null;
  if (requested.startsWith("service:")) return requested;
  if (!isAddress(requested, { strict: false })) {
    throw invalid("invalid owner", [
      { path: "owner", message: "must be a wallet address (0x…) or service:<sub>" },
    ]);
  }
  return getAddress(requested);
}
