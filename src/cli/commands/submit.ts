import { readFile } from "node:fs/promises";
import type { SubmitRequest } from "../../client/types.js";
import { UsageError } from "../errors.js";

export interface SubmitFlags {
  file?: string | undefined;
  provider?: string[] | undefined;
  model?: string[] | undefined;
  prompt?: string | undefined;
  input?: string | undefined;
  timeout?: string | undefined;
  "max-parallel"?: string | undefined;
  metadata?: string | undefined;
}

export const DEFAULT_PROMPT = "Say something about stopping GPU work quickly.";

/**
 * The body of `POST /jobs` from the flags: a whole body from `--file`
 * (`-` reads stdin), or one execution per `--provider`, each paired with the
 * `--model` at the same place (one `--model` serves all), all given the same
 * `--input` JSON or `--prompt` as a chat message. Without flags: one demo job.
 */
export async function submitBody(
  flags: SubmitFlags,
  stdin: () => Promise<string>,
): Promise<SubmitRequest> {
  if (flags.file !== undefined) {
    if (flags.provider || flags.model || flags.prompt || flags.input) {
      throw new UsageError(
        "--file holds the whole job: drop --provider, --model, --prompt and --input",
      );
    }
    const text = flags.file === "-" ? await stdin() : await readText(flags.file);
    return withOverrides(json(text, `--file ${flags.file}`) as SubmitRequest, flags);
  }
  const providers = flags.provider?.length ? flags.provider : ["demo"];
  const models = flags.model?.length
    ? flags.model
    : providers.every((p) => p === "demo")
      ? ["demo"]
      : [];
  if (models.length === 0)
    throw new UsageError("--model is required for providers other than demo");
  if (models.length !== 1 && models.length !== providers.length) {
    throw new UsageError(
      "give one --model for all providers, or one per --provider, in the same order",
    );
  }
  if (flags.prompt !== undefined && flags.input !== undefined) {
    throw new UsageError("give --prompt or --input, not both");
  }
  const input =
    flags.input !== undefined
      ? json(flags.input, "--input")
      : { messages: [{ role: "user", content: flags.prompt ?? DEFAULT_PROMPT }] };
  const used = new Set<string>();
  const executions = providers.map((provider, i) => {
    const model = models.length === 1 ? (models[0] as string) : (models[i] as string);
    return { key: uniqueKey(provider, used), provider, model, input };
  });
  return withOverrides({ executions } as SubmitRequest, flags);
}

function withOverrides(body: SubmitRequest, flags: SubmitFlags): SubmitRequest {
  const out = { ...body };
  if (flags.timeout !== undefined) out.timeout_ms = positiveInt(flags.timeout, "--timeout");
  if (flags["max-parallel"] !== undefined)
    out.max_parallel = positiveInt(flags["max-parallel"], "--max-parallel");
  if (flags.metadata !== undefined) {
    const metadata = json(flags.metadata, "--metadata");
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
      throw new UsageError("--metadata must be a JSON object");
    }
    out.metadata = metadata as Record<string, never>;
  }
  return out;
}

/** An execution key (`[a-z0-9_-]{1,64}`) from free text, unique among `used`. */
function uniqueKey(text: string, used: Set<string>): string {
  const base =
    text
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, "-")
      .slice(0, 60) || "e";
  let key = base;
  for (let n = 2; used.has(key); n++) key = `${base}-${n}`;
  used.add(key);
  return key;
}

function json(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function positiveInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what} must be a whole number above 0`);
  return n;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}
