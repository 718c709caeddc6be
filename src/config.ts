import { hostname } from "node:os";
import { z } from "zod";

/**
 * Every environment variable quench reads (SPEC.md section 5), parsed once at
 * start-up into a typed object. Nothing else reads `process.env`.
 */

/** A bad configuration; its message is one line naming each bad variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const blankToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

const int = (fallback: number, min: number, max: number) =>
  z.preprocess(
    blankToUndefined,
    z.coerce
      .number({ error: "must be a number" })
      .int("must be a whole number")
      .min(min, `must be at least ${min}`)
      .max(max, `must be at most ${max}`)
      .default(fallback),
  );

const optionalString = z.preprocess(blankToUndefined, z.string().optional());

const url = (protocols: string[]) =>
  z.preprocess(
    blankToUndefined,
    z
      .string()
      .refine((v) => URL.canParse(v) && protocols.includes(new URL(v).protocol), {
        message: `must be a ${protocols.map((p) => `${p}//`).join(" or ")} URL`,
      })
      .optional(),
  );

const list = z.preprocess(
  blankToUndefined,
  z
    .string()
    .optional()
    .transform((v) =>
      v === undefined
        ? []
        : v
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s !== ""),
    ),
);

const chainIds = z.preprocess(
  blankToUndefined,
  z
    .string()
    .default("1")
    .transform((v, ctx) => {
      const ids = v.split(",").map((s) => Number(s.trim()));
      if (ids.some((n) => !Number.isSafeInteger(n) || n <= 0)) {
        ctx.addIssue({ code: "custom", message: "must be a comma-separated list of chain ids" });
        return z.NEVER;
      }
      return ids;
    }),
);

/** `true` / `false`, or unset (undefined: the default depends on NODE_ENV). */
const bool = z.preprocess(
  blankToUndefined,
  z.enum(["true", "false"], { error: "must be true or false" }).optional(),
);

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const schema = z.object({
  NODE_ENV: z.preprocess(
    blankToUndefined,
    z.enum(["development", "production", "test"]).default("development"),
  ),
  PORT: int(8080, 0, 65535),
  HOST: optionalString,
  DATABASE_URL: url(["postgres:", "postgresql:"]),
  DATA_DIR: z.preprocess(blankToUndefined, z.string().default(".data")),
  ROLE: z.preprocess(blankToUndefined, z.enum(["all", "api", "runner"]).default("all")),
  INSTANCE_ID: optionalString,
  FLY_MACHINE_ID: optionalString,
  RUNNER_CONCURRENCY: int(8, 1, 1000),
  MAX_ATTEMPTS: int(3, 1, 100),
  LEASE_MS: int(30_000, 1_000, 3_600_000),
  CANCEL_POLL_MS: int(2_000, 50, 600_000),
  CANCEL_ACK_MS: int(2_000, 0, 60_000),
  SHUTDOWN_GRACE_MS: int(10_000, 0, 3_600_000),
  SESSION_SECRET: optionalString,
  SIWE_DOMAINS: list,
  SIWE_CHAIN_IDS: chainIds,
  RPC_URL: url(["http:", "https:"]),
  SERVICE_JWT_SECRET: optionalString,
  SERVICE_JWT_ISSUER: optionalString,
  SERVICE_JWT_AUDIENCE: optionalString,
  SERVICE_JWKS_URL: url(["http:", "https:"]),
  CORS_ORIGINS: list,
  PROVIDERS_FILE: optionalString,
  LOG_LEVEL: z.preprocess(blankToUndefined, z.enum(LOG_LEVELS).default("info")),
  LISTEN_NOTIFY: z.preprocess(blankToUndefined, z.enum(["on", "off"]).default("on")),
  RATE_LIMIT_SIGNIN: int(30, 0, 1_000_000),
  RATE_LIMIT_SUBMIT: int(600, 0, 1_000_000),
  RATE_LIMIT_CANCEL: int(1_200, 0, 1_000_000),
  WEBHOOK_RETRY_BASE_MS: int(5_000, 1, 3_600_000),
  WEBHOOK_ALLOW_HTTP: bool,
  WEBHOOK_ALLOW_PRIVATE: bool,
  NVIDIA_SMI: z.preprocess(blankToUndefined, z.string().default("nvidia-smi")),
});

export type Role = "all" | "api" | "runner";

export interface WebhookConfig {
  /** The first retry's delay (WEBHOOK_RETRY_BASE_MS); each next one doubles, with jitter. */
  retryBaseMs: number;
  /** Plain http URLs (WEBHOOK_ALLOW_HTTP; the default outside production). */
  allowHttp: boolean;
  /** Private, loopback and link-local addresses (WEBHOOK_ALLOW_PRIVATE; the default outside production). */
  allowPrivate: boolean;
}

export interface Config {
  env: "development" | "production" | "test";
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  role: Role;
  instanceId: string;
  runnerConcurrency: number;
  maxAttempts: number;
  leaseMs: number;
  cancelPollMs: number;
  cancelAckMs: number;
  shutdownGraceMs: number;
  /** Undefined in development until generated into DATA_DIR. */
  sessionSecret: string | undefined;
  siweDomains: string[];
  siweChainIds: number[];
  rpcUrl: string | undefined;
  serviceJwt: {
    secret: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
    jwksUrl: string | undefined;
  };
  corsOrigins: string[];
  providersFile: string | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  /** Requests per minute: sign-in per client address, submit and cancel per principal; 0 turns one off. */
  rateLimits: { signIn: number; submit: number; cancel: number };
  /**
   * LISTEN/NOTIFY between instances. Off (LISTEN_NOTIFY=off) behind a
   * transaction-pooling PgBouncer, where LISTEN cannot work: cancels then
   * reach other instances by the CANCEL_POLL_MS poll alone.
   */
  listenNotify: boolean;
  /** Webhook delivery (SPEC.md section 3, Webhooks). */
  webhooks: WebhookConfig;
  /** The nvidia-smi binary `gpu_check` providers ask (NVIDIA_SMI; default on PATH). */
  nvidiaSmi: string;
  /** Running on fly.io (FLY_MACHINE_ID set): its proxy's Fly-Client-IP header can be trusted. */
  onFly: boolean;
}

const MIN_SECRET_BYTES = 32;

/** Values never echoed in an error: URLs carry passwords and API keys. */
const MAY_HOLD_SECRET = /SECRET|URL|KEY|TOKEN|PASSWORD/;

/** Parses the environment; throws `ConfigError` naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? "environment");
      const value = env[name];
      const got =
        value === undefined || MAY_HOLD_SECRET.test(name)
          ? ""
          : ` (got ${JSON.stringify(truncate(value))})`;
      return `${name} ${issue.message}${got}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  const problems: string[] = [];
  const secretBytes = (name: string, value: string | undefined) => {
    if (value !== undefined && Buffer.byteLength(value, "utf8") < MIN_SECRET_BYTES) {
      problems.push(`${name} must be at least ${MIN_SECRET_BYTES} bytes`);
    }
  };
  secretBytes("SESSION_SECRET", e.SESSION_SECRET);
  secretBytes("SERVICE_JWT_SECRET", e.SERVICE_JWT_SECRET);
  if (e.NODE_ENV === "production") {
    if (e.DATABASE_URL === undefined) problems.push("DATABASE_URL is required in production");
    if (e.SESSION_SECRET === undefined) problems.push("SESSION_SECRET is required in production");
  }
  if (e.SERVICE_JWT_SECRET !== undefined && e.SERVICE_JWKS_URL !== undefined) {
    problems.push("SERVICE_JWT_SECRET and SERVICE_JWKS_URL are exclusive: set one");
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);

  return {
    env: e.NODE_ENV,
    port: e.PORT,
    // Loopback in development, so a laptop does not serve its LAN; every
    // interface in production, where fly.io's proxy must reach it.
    host: e.HOST ?? (e.NODE_ENV === "production" ? "0.0.0.0" : "127.0.0.1"),
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    role: e.ROLE,
    instanceId: e.INSTANCE_ID ?? e.FLY_MACHINE_ID ?? `${hostname()}-${process.pid}`,
    runnerConcurrency: e.RUNNER_CONCURRENCY,
    maxAttempts: e.MAX_ATTEMPTS,
    leaseMs: e.LEASE_MS,
    cancelPollMs: e.CANCEL_POLL_MS,
    cancelAckMs: e.CANCEL_ACK_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    sessionSecret: e.SESSION_SECRET,
    siweDomains: e.SIWE_DOMAINS,
    siweChainIds: e.SIWE_CHAIN_IDS,
    rpcUrl: e.RPC_URL,
    serviceJwt: {
      secret: e.SERVICE_JWT_SECRET,
      issuer: e.SERVICE_JWT_ISSUER,
      audience: e.SERVICE_JWT_AUDIENCE,
      jwksUrl: e.SERVICE_JWKS_URL,
    },
    corsOrigins: e.CORS_ORIGINS,
    providersFile: e.PROVIDERS_FILE,
    logLevel: e.LOG_LEVEL,
    rateLimits: {
      signIn: e.RATE_LIMIT_SIGNIN,
      submit: e.RATE_LIMIT_SUBMIT,
      cancel: e.RATE_LIMIT_CANCEL,
    },
    webhooks: {
      retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
      allowHttp:
        (e.WEBHOOK_ALLOW_HTTP ?? (e.NODE_ENV === "production" ? "false" : "true")) === "true",
      allowPrivate:
        (e.WEBHOOK_ALLOW_PRIVATE ?? (e.NODE_ENV === "production" ? "false" : "true")) === "true",
    },
    nvidiaSmi: e.NVIDIA_SMI,
    onFly: e.FLY_MACHINE_ID !== undefined,
    listenNotify: e.LISTEN_NOTIFY === "on",
  };
}

function truncate(value: string): string {
  return value.length > 40 ? `${value.slice(0, 40)}…` : value;
}
