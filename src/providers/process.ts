import { spawn } from "node:child_process";
import type { ProviderConfigOf } from "./config.js";
import { ProviderError } from "./errors.js";
import { waitGpuReleased } from "./nvidia-smi.js";
import { groupAlive, groupPids, signalGroup, waitGroupGone } from "./process-group.js";
import { lineCollector } from "./process-output.js";
import type { ExecutionCall, Provider } from "./types.js";

/** Environment a child inherits from quench; everything else (secrets above all) stays out. */
const INHERITED_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];
/** How often a `gpu_check` run's process group is listed: every pid it ever had is checked. */
const PID_POLL_MS = 250;

export interface ProcessOptions {
  /** The nvidia-smi binary (NVIDIA_SMI) for `gpu_check`. */
  nvidiaSmi: string;
}

/**
 * `process`: a local child process in its own process group. Input
 * `{"model", "input"}` as JSON on stdin; output the JSON on its last stdout
 * line; stdout lines `{"progress": …}` are progress reports. On abort, or
 * when progress stalls (`progress_stall_ms`, `progress_first_ms`), SIGTERM
 * to the whole group and SIGKILL after `grace_ms`. The attempt settles only
 * once no live process of the group remains, so grandchildren die too,
 * including stragglers left after a normal exit. With `gpu_check`, whether
 * the group's GPU memory was freed is reported afterwards (`gpuRelease`).
 */
export function processProvider(
  name: string,
  config: ProviderConfigOf<"process">,
  options: ProcessOptions = { nvidiaSmi: "nvidia-smi" },
): Provider {
  return { name, config, attempt: (call) => runProcess(name, config, options, call) };
}

async function runProcess(
  name: string,
  config: ProviderConfigOf<"process">,
  options: ProcessOptions,
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

  const pids = config.gpu_check ? trackPids(pgid) : undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const terminate = () => {
    if (killTimer !== undefined) return;
    // One more listing as the signal goes out (not awaited: the stop never waits for it).
    pids?.poll();
    signalGroup(pgid, "SIGTERM");
    killTimer = setTimeout(() => signalGroup(pgid, "SIGKILL"), config.grace_ms);
  };
  const stall = progressWatchdog(name, config, terminate);

  const out = lineCollector((progress) => {
    stall.reported();
    call.report?.(progress);
  });
  const errTail = lineCollector();
  child.stdout.on("data", (chunk: Buffer) => {
    call.activity();
    out.push(chunk);
    call.progress({ stdout_tail: out.tail() });
  });
  child.stderr.on("data", (chunk: Buffer) => {
    call.activity();
    errTail.push(chunk);
  });
  child.stdin.on("error", () => {}); // a child that never reads its input is not our failure
  child.stdin.end(`${JSON.stringify({ model: call.model, input: call.input })}\n`);

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
    const stalled = stall.failure();
    if (stalled !== undefined) throw stalled;
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
    stall.stop();
    child.stdout.destroy();
    child.stderr.destroy();
    if (pids !== undefined) {
      // The group is gone; its GPU memory may take longer. Checked after the attempt settles.
      void pids
        .stop()
        .then(async (seen) => {
          const release = await waitGpuReleased({
            bin: options.nvidiaSmi,
            pids: seen,
            timeoutMs: config.gpu_release_timeout_ms,
          });
          call.gpuRelease?.({ ...release, pids: [...seen] });
        })
        .catch(() => {}); // never an unhandled rejection: that would end the process
    }
  }
}

/**
 * `progress_stall_ms` / `progress_first_ms`: a timer that stops the group
 * (as a cancel does) when no progress report came in time. Off unless set;
 * `progress_stall_ms` counts only from the first report.
 */
function progressWatchdog(
  name: string,
  config: ProviderConfigOf<"process">,
  terminate: () => void,
) {
  const started = Date.now();
  let last: number | undefined;
  let failure: ProviderError | undefined;
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number | undefined) => {
    clearTimeout(timer);
    if (ms === undefined) return;
    timer = setTimeout(() => {
      const since = Date.now() - (last ?? started);
      failure = new ProviderError(
        "stalled",
        last === undefined
          ? `${name}: no progress report in the first ${since} ms`
          : `${name}: no progress report for ${since} ms`,
      );
      terminate();
    }, ms);
  };
  arm(config.progress_first_ms);
  return {
    reported() {
      last = Date.now();
      if (failure === undefined) arm(config.progress_stall_ms);
    },
    failure: () => failure,
    stop: () => clearTimeout(timer),
  };
}

/** Every pid the group ever had, listed every PID_POLL_MS while it runs (a dead one may still hold GPU memory). */
function trackPids(pgid: number) {
  const seen = new Set<number>([pgid]);
  const poll = async () => {
    for (const pid of await groupPids(pgid).catch(() => [])) seen.add(pid);
  };
  let last = poll();
  const timer = setInterval(() => {
    last = poll();
  }, PID_POLL_MS);
  return {
    poll(): void {
      last = poll();
    },
    /** Stops listing; resolves with every pid seen, once the last listing is in. */
    async stop(): Promise<Set<number>> {
      clearInterval(timer);
      await last;
      return seen;
    },
  };
}
