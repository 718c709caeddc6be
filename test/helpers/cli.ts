import { spawn } from "node:child_process";
import { join } from "node:path";
import { saveProcessLog } from "./logs.js";
import { ROOT, withDeadline } from "./process.js";

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `quench` command (bin/quench.js) as a real child process to its exit. */
export function runCli(
  args: string[],
  env: Record<string, string>,
  o: { timeoutMs?: number; stdin?: string; onStdout?: (text: string) => void } = {},
): Promise<CliRun> {
  const child = spawn(process.execPath, [join(ROOT, "bin/quench.js"), ...args], {
    cwd: ROOT,
    // No session cache unless a test asks for one: never the real home's.
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      QUENCH_SESSION_CACHE: "off",
      ...env,
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    o.onStdout?.(stdout);
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin.end(o.stdin ?? "");
  const done = new Promise<CliRun>((resolve) =>
    child.on("close", (code) => {
      // stdout is the command's output (`quench token` prints a token on purpose); stderr must stay clean.
      saveProcessLog("cli-stderr", stderr);
      resolve({ code, stdout, stderr });
    }),
  );
  const ms = o.timeoutMs ?? 30_000;
  return withDeadline(done, ms, `quench ${args.join(" ")} did not exit within ${ms} ms`).catch(
    (err) => {
      child.kill("SIGKILL");
      throw err;
    },
  );
}
