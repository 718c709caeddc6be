import { type Context, Hono, type Next } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { PublicClient } from "viem";
import { unavailableCode } from "../db/unavailable.js";
import type { Logger } from "../logger.js";
import type { ProviderRegistry } from "../providers/registry.js";
import type { CancelService } from "../runner/cancel.js";
import type { JobFeed } from "../runner/job-feed.js";
import type { UrlRules } from "../webhooks/url-safety.js";
import { requireAuth } from "./auth/middleware.js";
import type { Authenticator } from "./auth/tokens.js";
import type { ApiEnv } from "./env.js";
import { ApiError, errorBody, makeErrorHandler } from "./errors.js";
import { type OperationsDeps, operationsRoutes } from "./operations.js";
import { clientAddress, rateLimit } from "./rate-limit.js";
import { authRoutes } from "./routes/auth.js";
import { cancelRoutes } from "./routes/cancel.js";
import { jobsRoutes } from "./routes/jobs.js";
import { resumeRoutes } from "./routes/resume.js";
import { streamRoutes } from "./routes/stream.js";
import { webhookRoutes } from "./routes/webhooks.js";
import type { StreamRegistry } from "./streams.js";

const MAX_BODY_BYTES = 1024 * 1024;
const JOB_PATH = /^\/api\/v1\/jobs\/([0-9a-fA-F-]{36})(?:\/|$)/;

/** What the jobs API needs; absent when the instance only runs jobs (ROLE=runner). */
export interface JobsApiDeps {
  auth: Authenticator;
  providers: ProviderRegistry;
  feed: JobFeed;
  cancelJob: CancelService;
  notifyNewWork: () => void;
  /** The owner of a job this instance's runner holds; undefined when not held (or no runner). */
  heldOwner: (jobId: string) => string | undefined;
  streams: StreamRegistry;
  siweDomains: string[];
  /** Accept the request's host as SIWE domain when SIWE_DOMAINS is empty (development only). */
  siweHostFallback: boolean;
  siweChainIds: number[];
  publicClient?: PublicClient | undefined;
  corsOrigins: string[];
  rateLimits: { signIn: number; submit: number; cancel: number };
  trustFlyClientIp: boolean;
  /** Where webhooks may point (WEBHOOK_ALLOW_HTTP, WEBHOOK_ALLOW_PRIVATE). */
  webhookRules: UrlRules;
  /** SSE tuning, for tests. */
  stream?: { heartbeatMs?: number; pollMs?: number };
}

export interface AppDeps extends OperationsDeps {
  logger: Logger;
  api?: JobsApiDeps;
}

/**
 * SPEC.md section 3: a response sent before the request's body was read (a
 * 413 on Content-Length, a 401 or 404 before the handler reads) says
 * `Connection: close`. Otherwise Node would try to drain or drop the unread
 * bytes, and a keep-alive client's next request on that socket could be
 * reset ("other side closed"); told to close, the client's pool opens a new one.
 */
async function closeAfterUnreadBody(c: Context<ApiEnv>, next: Next): Promise<void> {
  await next();
  const raw = c.req.raw;
  const hasBody =
    raw.headers.has("transfer-encoding") || Number(raw.headers.get("content-length") ?? 0) > 0;
  if (hasBody && (!raw.bodyUsed || c.res.status === 413)) c.header("Connection", "close");
}

/** The HTTP application: every route group mounted on one hono app, one error mapper. */
export function createApp(deps: AppDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.onError(
    makeErrorHandler(
      (err, c) =>
        (c.get("log") ?? deps.logger).error(
          { err, method: c.req.method, path: c.req.path },
          "unhandled error",
        ),
      (err, c) =>
        (c.get("log") ?? deps.logger).warn(
          { code: unavailableCode(err), method: c.req.method, path: c.req.path },
          "database unavailable",
        ),
    ),
  );
  app.notFound((c) =>
    c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404),
  );

  app.use(requestId());
  app.use(async function requestLog(c, next) {
    const log = deps.logger.child({ request_id: c.get("requestId") });
    c.set("log", log);
    const started = performance.now();
    await next();
    // A request about one job names it, so its lines join the runner's under job_id.
    const jobId =
      JOB_PATH.exec(c.req.path)?.[1] ?? JOB_PATH.exec(c.res.headers.get("location") ?? "")?.[1];
    log.info(
      {
        method: c.req.method,
        path: c.req.path,
        ...(jobId === undefined ? {} : { job_id: jobId }),
        status: c.res.status,
        ms: Math.round(performance.now() - started),
      },
      "request",
    );
  });
  app.use(secureHeaders());
  // While draining, every response asks the client to reconnect elsewhere, so
  // keep-alive sockets do not hold server.close() open (DESIGN.md, shutdown).
  app.use(async function connectionCloseWhileDraining(c, next) {
    await next();
    if (deps.isDraining()) c.header("Connection", "close");
  });

  app.use(closeAfterUnreadBody);

  app.route("/", operationsRoutes(deps));
  const api = deps.api;
  if (api === undefined) return app;

  if (api.corsOrigins.length > 0) {
    app.use(
      "/api/*",
      cors({
        origin: api.corsOrigins,
        allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key"],
        exposeHeaders: ["X-Request-Id", "Retry-After", "Location"],
        maxAge: 600,
      }),
    );
  }
  app.use(
    "/api/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError("payload_too_large", `the body exceeds ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );
  const db = deps.database.db;
  const principal = (c: { get(key: "principal"): { owner: string } }) => c.get("principal").owner;
  // Sign-in and submit limits are shared by the cluster (a guess or a flood
  // spread over instances still counts once); cancel's stays in memory, so a
  // cancel never waits on a database write before it aborts the work.
  app.use(
    "/api/v1/auth/*",
    rateLimit({
      perMinute: api.rateLimits.signIn,
      what: "sign-in",
      keyOf: (c) => clientAddress(c, api.trustFlyClientIp),
      shared: db,
    }),
  );
  app.route("/api/v1", authRoutes({ db, ...api }));
  app.use("/api/v1/jobs", requireAuth(api.auth));
  app.use("/api/v1/jobs/*", requireAuth(api.auth));
  app.use(
    "/api/v1/jobs",
    rateLimit({
      perMinute: api.rateLimits.submit,
      what: "submit",
      keyOf: principal,
      applies: (c) => c.req.method === "POST",
      shared: db,
    }),
  );
  app.use(
    "/api/v1/jobs/*",
    rateLimit({
      perMinute: api.rateLimits.cancel,
      what: "cancel",
      keyOf: principal,
      applies: (c) => c.req.method === "POST" && c.req.path.endsWith("/cancel"),
    }),
  );
  app.route(
    "/api/v1",
    cancelRoutes({ db, cancelJob: api.cancelJob, metrics: deps.metrics, heldOwner: api.heldOwner }),
  );
  app.route(
    "/api/v1",
    jobsRoutes({
      db,
      providers: api.providers,
      notifyNewWork: api.notifyNewWork,
      metrics: deps.metrics,
    }),
  );
  app.route("/api/v1", resumeRoutes({ db, notifyNewWork: api.notifyNewWork }));
  app.use("/api/v1/webhooks", requireAuth(api.auth));
  app.use("/api/v1/webhooks/*", requireAuth(api.auth));
  app.route("/api/v1", webhookRoutes({ db, rules: api.webhookRules }));
  app.route("/api/v1", streamRoutes({ db, feed: api.feed, streams: api.streams, ...api.stream }));
  return app;
}
