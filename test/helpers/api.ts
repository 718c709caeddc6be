import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Agent } from "undici";
import type { LocalAccount, PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createSiweMessage } from "viem/siwe";
import { createApp } from "../../src/api/app.js";
import type { Scope } from "../../src/api/auth/principal.js";
import { createAuthenticator, signServiceToken } from "../../src/api/auth/tokens.js";
import { createStreamRegistry, type StreamRegistry } from "../../src/api/streams.js";
import type { WebhookConfig } from "../../src/config.js";
import type { Database } from "../../src/db/connection.js";
import type { Logger } from "../../src/logger.js";
import { rememberSecret, testLogger } from "./logs.js";
import { type RunningRunner, startRunner } from "./runner.js";

export const HOST = "quench.test";
export const ISSUER = "issuer.test";
export const AUDIENCE = "quench-api";

export interface TestApi {
  app: ReturnType<typeof createApp>;
  runner: RunningRunner;
  streams: StreamRegistry;
  serviceSecret: string;
  /** A request to the app in process; `token` becomes the bearer header. */
  call(
    method: string,
    path: string,
    options?: { token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<Response>;
  /** A service token signed with this app's secret. */
  serviceToken(
    sub: string,
    scopes: Scope[],
    overrides?: { expiresInS?: number; audience?: string },
  ): Promise<string>;
  /** Signs in with SIWE as `account` (a real signature) and returns the session token. */
  signIn(account: LocalAccount): Promise<string>;
  close(): Promise<void>;
}

/** A fresh wallet; its key is one of the secrets the log scan looks for. */
export function newWallet(): LocalAccount {
  const key = generatePrivateKey();
  rememberSecret(key);
  return privateKeyToAccount(key);
}

/** A signed SIWE message for `account`, with the fields a test may override. */
export async function siweMessage(
  account: LocalAccount,
  nonce: string,
  overrides: Partial<Parameters<typeof createSiweMessage>[0]> = {},
): Promise<{ message: string; signature: string }> {
  const message = createSiweMessage({
    address: account.address,
    chainId: 1,
    domain: HOST,
    nonce,
    uri: `https://${HOST}/`,
    version: "1",
    issuedAt: new Date(),
    ...overrides,
  });
  return { message, signature: await account.signMessage({ message }) };
}

/** The quench app, with a real runner on `database` and providers from raw configuration. */
export async function startApi(
  database: Database,
  providers: Record<string, unknown>,
  options: {
    sessionTtlMs?: number;
    /** RPC_URL's client: contract wallets are verified through it. */
    publicClient?: PublicClient;
    jwksUrl?: string;
    ackMs?: number;
    concurrency?: number;
    rateLimits?: { signIn: number; submit: number; cancel: number };
    /** SIWE_DOMAINS; HOST when left out. */
    siweDomains?: string[];
    logger?: Logger;
    /** Webhook rules and retry timing (default: http and loopback allowed, as in development). */
    webhooks?: Partial<WebhookConfig>;
    nvidiaSmi?: string;
  } = {},
): Promise<TestApi> {
  const runner = await startRunner(database.db, providers, {
    cancelAckMs: options.ackMs ?? 5_000,
    concurrency: options.concurrency ?? 16,
    webhooks: options.webhooks,
    ...(options.nvidiaSmi === undefined ? {} : { nvidiaSmi: options.nvidiaSmi }),
  });
  const serviceSecret = randomBytes(32).toString("hex");
  const sessionSecret = randomBytes(32).toString("hex");
  rememberSecret(serviceSecret, sessionSecret);
  const agent = new Agent();
  const auth = createAuthenticator({
    sessionSecret,
    sessionTtlMs: options.sessionTtlMs,
    service: {
      secret: options.jwksUrl ? undefined : serviceSecret,
      jwksUrl: options.jwksUrl,
      issuer: ISSUER,
      audience: AUDIENCE,
    },
    agent,
  });
  const streams = createStreamRegistry();
  const app = createApp({
    database,
    logger: options.logger ?? testLogger("api-test"),
    metrics: runner.metrics,
    instance: "api-test",
    role: "all",
    runningJobs: () => runner.manager.count(),
    isDraining: () => false,
    api: {
      auth,
      providers: runner.providers,
      feed: runner.feed,
      cancelJob: runner.runner.cancelJob,
      notifyNewWork: () => runner.runner.notifyNewWork(),
      heldOwner: (id) => runner.runner.heldOwner(id),
      streams,
      siweDomains: options.siweDomains ?? [HOST],
      siweHostFallback: false,
      siweChainIds: [1, 8453],
      publicClient: options.publicClient,
      corsOrigins: ["https://portal.test"],
      rateLimits: options.rateLimits ?? { signIn: 0, submit: 0, cancel: 0 },
      trustFlyClientIp: false,
      webhookRules: { allowHttp: true, allowPrivate: true, ...options.webhooks },
      stream: { heartbeatMs: 200, pollMs: 100 },
    },
  });
  const call: TestApi["call"] = (method, path, o = {}) => {
    const headers: Record<string, string> = { host: HOST, ...o.headers };
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === "string" ? o.body : JSON.stringify(o.body);
      headers["content-type"] ??= "application/json";
    }
    return Promise.resolve(app.request(`http://${HOST}${path}`, { method, headers, body }));
  };
  return {
    app,
    runner,
    streams,
    serviceSecret,
    call,
    serviceToken: (sub, scopes, o = {}) =>
      signServiceToken(serviceSecret, {
        sub,
        scopes,
        issuer: ISSUER,
        audience: o.audience ?? AUDIENCE,
        expiresInS: o.expiresInS ?? 600,
      }),
    async signIn(account) {
      const { nonce } = (await (await call("GET", "/api/v1/auth/nonce")).json()) as {
        nonce: string;
      };
      const res = await call("POST", "/api/v1/auth/siwe", {
        body: await siweMessage(account, nonce),
      });
      if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { token: string }).token;
    },
    async close() {
      streams.closeAll();
      await runner.stop();
      await agent.close();
    },
  };
}

/** Serves `app` on a loopback port (a free one unless `port` is given), as a real HTTP server. */
export async function listen(
  app: { fetch: (req: Request) => Response | Promise<Response> },
  port = 0,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" });
  await new Promise((resolve) => server.once("listening", resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
