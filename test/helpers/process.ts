import { type ChildProcess, spawn } from "node:child_process";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { keepSpawnedLog } from "./logs.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code, or rejects after `ms`. */
  exited(ms: number): Promise<number | null>;
}

/** Runs a TypeScript entry point of quench as a real child process (node --import tsx). */
export function spawnEntry(entry: string, env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      keepSpawnedLog(basename(entry, ".ts"), out + err, env);
      resolve(code);
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: (ms) => withDeadline(exit, ms, `${entry} did not exit within ${ms} ms`),
  };
}

/** Waits until a JSON log line matching `predicate` appears on stdout. */
export async function waitForLogLine(
  proc: Spawned,
  predicate: (line: Record<string, unknown>) => boolean,
  ms: number,
): Promise<Record<string, unknown>> {
  const found = new Promise<Record<string, unknown>>((resolve, reject) => {
    const check = () => {
      for (const text of proc.stdout().split("\n")) {
        if (!text.startsWith("{")) continue;
        const line = JSON.parse(text) as Record<string, unknown>;
        if (predicate(line)) return resolve(line);
      }
    };
    proc.child.stdout?.on("data", check);
    proc.child.on("exit", (code) =>
      reject(new Error(`exited with ${code} first; stderr: ${proc.stderr()}`)),
    );
    check();
  });
  // What the process said by the deadline, not at the start of the wait.
  return withDeadline(found, ms, "").catch((err: unknown) => {
    if (err instanceof Error && err.message === "") {
      throw new Error(
        `no matching log line within ${ms} ms; stdout: ${proc.stdout().slice(-2_000)}; stderr: ${proc.stderr().slice(-2_000)}`,
      );
    }
    throw err;
  });
}

export function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
