import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger, type Logger } from "../../src/logger.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Every log line of the test run lands under test-artifacts/logs (one file
 * per test worker or spawned process), and every secret a test makes is
 * listed under test-artifacts/secrets; test/global-setup.ts scans the
 * first for the second once the run ends (SPEC: secrets are never logged).
 */
export const LOG_DIR = join(ROOT, "test-artifacts", "logs");
export const SECRETS_DIR = join(ROOT, "test-artifacts", "secrets");

/** A logger like production's, at debug level, writing to this worker's log file. */
export function testLogger(instance: string): Logger {
  mkdirSync(LOG_DIR, { recursive: true });
  return createLogger({
    level: "debug",
    instance,
    destination: join(LOG_DIR, `worker-${process.pid}.ndjson`),
  });
}

/** Keeps the output of a spawned process for the scan. */
export function saveProcessLog(name: string, text: string): void {
  mkdirSync(LOG_DIR, { recursive: true });
  appendFileSync(join(LOG_DIR, `${name}-${process.pid}.ndjson`), text);
}

/**
 * Keeps a spawned quench process's output for the scan, with the secrets it
 * was given (variables named *SECRET*, *TOKEN*, *PRIVATE_KEY*) and the ones
 * it generated in its DATA_DIR.
 */
export function keepSpawnedLog(name: string, text: string, env: Record<string, string>): void {
  saveProcessLog(name, text);
  rememberSecret(
    ...Object.entries(env)
      .filter(([k]) => /SECRET|TOKEN|PRIVATE_KEY/.test(k))
      .map(([, v]) => v),
  );
  if (env.DATA_DIR === undefined) return;
  try {
    const stored = JSON.parse(readFileSync(join(env.DATA_DIR, "secrets.json"), "utf8")) as Record<
      string,
      string
    >;
    rememberSecret(...Object.values(stored));
  } catch {
    // No secrets generated (production config, or it never started).
  }
}

/** Names a secret the logs must never contain. */
export function rememberSecret(...values: (string | undefined)[]): void {
  mkdirSync(SECRETS_DIR, { recursive: true });
  const lines = values.filter((v): v is string => typeof v === "string" && v.length >= 16);
  if (lines.length > 0)
    appendFileSync(join(SECRETS_DIR, `${process.pid}.txt`), `${lines.join("\n")}\n`);
}
