import { spawn } from "node:child_process";
import { StringDecoder } from "node:string_decoder";
import type { ProviderConfigOf } from "./config.js";
import { ProviderError } from "./errors.js";
import { groupAlive, signalGroup, waitGroupGone } from "./process-group.js";
import type { ExecutionCall, Provider } from "./types.js";

const TAIL_CHARS = 4096;
const MAX_LINE_CHARS = 16 * 1024 * 1024;
/** Environment a child inherits from quench; everything else (secrets above all) stays out. */
const INHERITED_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/**
 * `process`: a local child process in its own process group. Input
 * `{"model", "input"}` as JSON on stdin; output the JSON on its last stdout
 * line. On abort, SIGTERM to the whole group and SIGKILL after `grace_ms`.
 * The attempt settles only once no live process of the group remains, so
 * grandchildren die too, including stragglers left after a normal exit.
 */
export function processProvider(name: string, config: ProviderConfigOf<"process">): Provider {
  return { name, config, attempt: (call) => runProcess(name, config, call) };
}

async function runProcess(
  name: string,
  config: ProviderConfigOf<"process">,
  call: ExecutionCall,
): Promise<unknown> {
  const [command, ...args] = config.command as [string, ...string[]];
  const env: Record<string, string> = {};
  for (const key of INHERITED_ENV) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  Object.assign(env, config.env, {
    QUENCH_EXECUTION_ID: call.executionId,
    QUENCH_MODEL: call.model,
  });

  const child = spawn(command, args, {
    cwd: config.cwd,
    env,
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const failedToStart = new Promise<Error>((resolve) => child.once("error", resolve));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const pgid = child.pid;
  if (pgid === undefined) {
    const err = await failedToStart;
    throw new ProviderError("process_failed", `${name}: cannot start ${command}: ${err.message}`);
  }

  const out = lineCollector(call, true);
  const errTail = lineCollector(call, false);
  child.stdout.on("data", out.push);
  child.stderr.on("data", errTail.push);
  child.stdin.on("error", () => {}); // a child that never reads its input is not our failure
  child.stdin.end(`${JSON.stringify({ model: call.model, input: call.input })}\n`);

  let killTimer: NodeJS.Timeout | undefined;
  const terminate = () => {
    if (killTimer !== undefined) return;
    signalGroup(pgid, "SIGTERM");
    killTimer = setTimeout(() => signalGroup(pgid, "SIGKILL"), config.grace_ms);
  };
  const signal = call.ctx.signal;
  signal.addEventListener("abort", terminate, { once: true });
  if (signal.aborted) terminate();

  try {
    const ended = await Promise.race([exited, failedToStart]);
    if (await groupAlive(pgid)) {
      terminate();
      if (!(await waitGroupGone(pgid, config.grace_ms + 5_000))) {
        signalGroup(pgid, "SIGKILL");
        await waitGroupGone(pgid, 2_000);
      }
    }
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    if (signal.aborted) throw signal.reason;
    if (ended instanceof Error) {
      throw new ProviderError("process_failed", `${name}: ${command} failed: ${ended.message}`);
    }
    if (ended.code !== 0) {
      const how = ended.signal ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`;
      const stderr = errTail.tail().trim();
      throw new ProviderError(
        "process_failed",
        `${name}: ${command} ${how}${stderr ? `: ${stderr.slice(-500)}` : ""}`,
      );
    }
    const last = out.lastLine();
    try {
      return JSON.parse(last);
    } catch {
      throw new ProviderError(
        "bad_response",
        `${name}: last stdout line is not JSON: ${last.slice(0, 200)}`,
      );
    }
  } finally {
    signal.removeEventListener("abort", terminate);
    clearTimeout(killTimer);
    child.stdout.destroy();
    child.stderr.destroy();
  }
}

/** Keeps the last complete line and a short tail of a stream, reporting activity (and progress for stdout). */
function lineCollector(call: ExecutionCall, reportProgress: boolean) {
  const decoder = new StringDecoder("utf8");
  let current = "";
  let last = "";
  let tail = "";
  return {
    push(chunk: Buffer) {
      call.activity();
      const text = decoder.write(chunk);
      tail = (tail + text).slice(-TAIL_CHARS);
      const lines = (current + text).split("\n");
      current = (lines.pop() ?? "").slice(-MAX_LINE_CHARS);
      for (let i = lines.length - 1; i >= 0; i--) {
        const line = (lines[i] ?? "").trim();
        if (line !== "") {
          last = line;
          break;
        }
      }
      if (reportProgress) call.progress({ stdout_tail: tail });
    },
    lastLine: () => (current.trim() !== "" ? current.trim() : last),
    tail: () => tail,
  };
}
