import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { createLogger, type Logger } from "../../src/logger.js";
import { ROOT } from "./process.js";

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

/** Names a secret the logs must never contain. */
export function rememberSecret(...values: (string | undefined)[]): void {
  mkdirSync(SECRETS_DIR, { recursive: true });
  const lines = values.filter((v): v is string => typeof v === "string" && v.length >= 16);
  if (lines.length > 0)
    appendFileSync(join(SECRETS_DIR, `${process.pid}.txt`), `${lines.join("\n")}\n`);
}
