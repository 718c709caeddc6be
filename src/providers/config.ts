import { readFile } from "node:fs/promises";
import { z } from "zod";

/**
 * The operator's provider configuration (SPEC.md section 4), from
 * PROVIDERS_FILE. Validated once at start-up; errors name the provider and
 * the field. No URL ever comes from a job: only from here.
 */

export class ProvidersConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProvidersConfigError";
  }
}

const httpUrl = z
  .string()
  .refine((v) => URL.canParse(v) && ["http:", "https:"].includes(new URL(v).protocol), {
    message: "must be an http:// or https:// URL",
  });

const ms = (fallback: number, min = 1) => z.number().int().min(min).default(fallback);

/** Settings every kind shares: how many calls at once, how long, when a silence is a stall, retries. */
const common = {
  max_concurrency: z.number().int().min(1).max(10_000).default(64),
  timeout_ms: ms(15 * 60_000),
  stall_ms: ms(60_000),
  /** Retries of an execution that does not say how many it wants. */
  retries: z.number().int().min(0).max(10).default(2),
  retry_base_ms: ms(250),
  retry_max_ms: ms(10_000),
  /** USD per second of GPU time, for `usage.cost_usd`; left out, executions have no cost. */
  price_per_second: z.number().nonnegative().max(1_000).optional(),
};

const headers = z.record(z.string(), z.string()).default({});

/** Settings of the remote-queue kinds (SPEC.md section 4): polling, the cancel call, its confirmation. */
const remoteQueue = {
  headers,
  poll_ms: ms(1_000, 10),
  cancel_timeout_ms: ms(5_000),
  confirm_timeout_ms: ms(30_000, 0),
};

const schemas = {
  http: z.object({ kind: z.literal("http"), url: httpUrl, headers, ...common }).strict(),
  openai: z
    .object({
      kind: z.literal("openai"),
      base_url: httpUrl,
      api_key: z.string().optional(),
      headers,
      ...common,
    })
    .strict(),
  runpod: z
    .object({
      kind: z.literal("runpod"),
      base_url: httpUrl,
      api_key: z.string().optional(),
      ...remoteQueue,
      ...common,
    })
    .strict(),
  replicate: z
    .object({
      kind: z.literal("replicate"),
      base_url: httpUrl.default("https://api.replicate.com/v1"),
      api_token: z.string().min(1),
      ...remoteQueue,
      ...common,
    })
    .strict(),
  fal: z
    .object({
      kind: z.literal("fal"),
      base_url: httpUrl.default("https://queue.fal.run"),
      api_key: z.string().optional(),
      ...remoteQueue,
      ...common,
    })
    .strict(),
  process: z
    .object({
      kind: z.literal("process"),
      command: z.array(z.string().min(1)).min(1),
      cwd: z.string().optional(),
      env: z.record(z.string(), z.string()).default({}),
      grace_ms: ms(10_000, 0),
      /** No progress report for this long (once the first came) → the execution fails as `stalled`. */
      progress_stall_ms: z.number().int().min(1).optional(),
      /** No first progress report within this long of the start → `stalled` too. */
      progress_first_ms: z.number().int().min(1).optional(),
      /** After the process group is gone, wait for nvidia-smi to show its GPU memory freed. */
      gpu_check: z.boolean().default(false),
      gpu_release_timeout_ms: ms(30_000),
      ...common,
    })
    .strict(),
  demo: z
    .object({
      kind: z.literal("demo"),
      tokens_per_second: z.number().positive().max(100_000).default(20),
      max_tokens: z.number().int().min(1).max(1_000_000).default(200),
      ...common,
    })
    .strict(),
};

const providerSchema = z.discriminatedUnion("kind", [
  schemas.http,
  schemas.openai,
  schemas.runpod,
  schemas.replicate,
  schemas.fal,
  schemas.process,
  schemas.demo,
]);

export type ProviderConfig = z.infer<typeof providerSchema>;
export type ProviderKind = ProviderConfig["kind"];
export type ProviderConfigOf<K extends ProviderKind> = Extract<ProviderConfig, { kind: K }>;

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** The configuration when PROVIDERS_FILE is not set: the built-in demo only. */
export function defaultProviders(): Map<string, ProviderConfig> {
  return new Map([["demo", providerSchema.parse({ kind: "demo" })]]);
}

export async function loadProvidersFile(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Map<string, ProviderConfig>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ProvidersConfigError(`PROVIDERS_FILE ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ProvidersConfigError(
      `PROVIDERS_FILE ${path}: invalid JSON: ${(err as Error).message}`,
    );
  }
  return parseProviders(raw, env);
}

/** Validates the configuration object; every problem is named as `provider "x" field y: …`. */
export function parseProviders(raw: unknown, env: NodeJS.ProcessEnv): Map<string, ProviderConfig> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ProvidersConfigError("providers: must be a JSON object of name → provider");
  }
  const problems: string[] = [];
  const providers = new Map<string, ProviderConfig>();
  for (const [name, value] of Object.entries(raw)) {
    if (!NAME.test(name)) {
      problems.push(`provider ${JSON.stringify(name)}: name must match ${NAME.source}`);
      continue;
    }
    const missing: string[] = [];
    const interpolated = interpolate(value, env, [], missing);
    for (const m of missing) problems.push(`provider "${name}" ${m}`);
    if (missing.length > 0) continue;
    const parsed = providerSchema.safeParse(interpolated);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path.join(".") || "kind";
        problems.push(`provider "${name}" field ${field}: ${issue.message}`);
      }
      continue;
    }
    providers.set(name, parsed.data);
  }
  if (problems.length > 0)
    throw new ProvidersConfigError(`invalid providers: ${problems.join("; ")}`);
  if (providers.size === 0) throw new ProvidersConfigError("invalid providers: none configured");
  return providers;
}

/** Replaces `${NAME}` in every string with the environment variable; records the missing ones. */
function interpolate(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: string[],
  missing: string[],
): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, variable: string) => {
      const replacement = env[variable];
      if (replacement === undefined) {
        missing.push(`field ${path.join(".")}: environment variable ${variable} is not set`);
        return "";
      }
      return replacement;
    });
  }
  if (Array.isArray(value))
    return value.map((v, i) => interpolate(v, env, [...path, String(i)], missing));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...path, k], missing)]),
    );
  }
  return value;
}
