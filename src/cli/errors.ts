import { QuenchError } from "../client/errors.js";

/** The exit codes of `quench` (README, "CLI"). */
export const EXIT = {
  ok: 0,
  /** The job failed, was cancelled, timed out or ended partial (`--wait`, `watch`). */
  jobNotCompleted: 1,
  /** Bad usage, missing or refused credentials, or a request quench refused. */
  usage: 2,
} as const;

/** A mistake in how the command was called; printed as one line, exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** One line for a failure, and its code for `--json`. */
export function describeFailure(err: unknown): { code: string; message: string } {
  if (err instanceof UsageError) return { code: "usage", message: err.message };
  if (err instanceof QuenchError) {
    const hint =
      err.code === "unauthenticated"
        ? " (check QUENCH_TOKEN or QUENCH_PRIVATE_KEY)"
        : err.code === "network_error"
          ? " (is the server running? QUENCH_URL sets where it is)"
          : "";
    const details = err.details.map((d) => `\n  ${d.path}: ${d.message}`).join("");
    return { code: err.code, message: `${err.message}${hint}${details}` };
  }
  return { code: "internal", message: err instanceof Error ? err.message : String(err) };
}
