import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { findLeaks } from "./helpers/log-scan.js";
import { LOG_DIR, SECRETS_DIR } from "./helpers/logs.js";

/**
 * Around the whole run: start with no logs, and at the end scan every log
 * line any test produced (in-process loggers and spawned servers and CLIs)
 * for credentials and for every secret the tests made. A leak fails the run.
 */
export function setup(): void {
  rmSync(LOG_DIR, { recursive: true, force: true });
  rmSync(SECRETS_DIR, { recursive: true, force: true });
  mkdirSync(LOG_DIR, { recursive: true });
}

export function teardown(): void {
  const secrets = existsSync(SECRETS_DIR)
    ? readdirSync(SECRETS_DIR).flatMap((f) =>
        readFileSync(join(SECRETS_DIR, f), "utf8").split("\n"),
      )
    : [];
  const known = [...new Set(secrets.filter((s) => s.length >= 16))];
  const files = readdirSync(LOG_DIR);
  let lines = 0;
  const leaks = files.flatMap((f) => {
    const text = readFileSync(join(LOG_DIR, f), "utf8");
    lines += text.split("\n").length - 1;
    return findLeaks(f, text, known);
  });
  if (leaks.length > 0) {
    const list = leaks
      .slice(0, 20)
      .map((l) => `  ${l.file}:${l.line}: ${l.what}`)
      .join("\n");
    // vitest reports a teardown error but still exits 0: set the code as well.
    process.exitCode = 1;
    throw new Error(`secrets in the logs (test-artifacts/logs):\n${list}`);
  }
  process.stdout.write(
    `log scan: ${lines} lines in ${files.length} files, ${known.length} secrets looked for, none found\n`,
  );
}
