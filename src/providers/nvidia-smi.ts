import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

/** One call may take this long; then it is killed (a GPU in trouble can hang nvidia-smi). */
const CALL_TIMEOUT_MS = 5_000;
const QUERY = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"];

/** nvidia-smi could not be run, failed, hung, or printed something we cannot read. */
export class NvidiaSmiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NvidiaSmiError";
  }
}

export interface ComputeApp {
  pid: number;
  usedMib: number;
}

/**
 * The processes holding GPU memory, as `nvidia-smi --query-compute-apps`
 * lists them. Each call is killed (SIGKILL) after `timeoutMs`.
 */
export function queryComputeApps(bin: string, timeoutMs = CALL_TIMEOUT_MS): Promise<ComputeApp[]> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      QUERY,
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) {
          const why = (err as { killed?: boolean }).killed
            ? `did not answer within ${timeoutMs} ms`
            : (stderr.trim() || err.message).slice(0, 300);
          return reject(new NvidiaSmiError(`${bin} ${why}`));
        }
        const apps: ComputeApp[] = [];
        for (const line of stdout.split("\n")) {
          if (line.trim() === "" || /no running/i.test(line)) continue;
          const [pid, mib] = line.split(",").map((f) => Number(f.trim()));
          if (
            !Number.isInteger(pid) ||
            pid === undefined ||
            mib === undefined ||
            Number.isNaN(mib)
          ) {
            return reject(
              new NvidiaSmiError(`${bin} printed an unreadable line: ${line.slice(0, 100)}`),
            );
          }
          apps.push({ pid, usedMib: mib });
        }
        resolve(apps);
      },
    );
  });
}

/** At start-up, for providers with `gpu_check`: nvidia-smi must run and answer, or the process stops. */
export async function checkNvidiaSmi(bin: string): Promise<void> {
  await queryComputeApps(bin);
}

export type GpuRelease =
  | { released: true; at: Date }
  /** Still held when the wait ended: which of the pids, and how much; or why nvidia-smi could not say. */
  | { released: false; held: ComputeApp[]; error: string | null };

/**
 * Polls nvidia-smi until none of `pids` holds GPU memory, for at most
 * `timeoutMs`. A failing or hanging nvidia-smi never blocks longer than
 * that: each call has its own timeout, and a failure is retried until the
 * wait ends (then reported).
 */
export async function waitGpuReleased(options: {
  bin: string;
  pids: ReadonlySet<number>;
  timeoutMs: number;
  pollMs?: number;
}): Promise<GpuRelease> {
  const deadline = Date.now() + options.timeoutMs;
  const pollMs = options.pollMs ?? 250;
  let held: ComputeApp[] = [];
  let error: string | null = null;
  for (;;) {
    const left = deadline - Date.now();
    try {
      const apps = await queryComputeApps(
        options.bin,
        Math.max(1, Math.min(CALL_TIMEOUT_MS, left)),
      );
      held = apps.filter((a) => options.pids.has(a.pid));
      error = null;
      if (held.length === 0) return { released: true, at: new Date() };
    } catch (err) {
      error = (err as Error).message;
    }
    if (Date.now() + pollMs >= deadline) return { released: false, held, error };
    await sleep(pollMs);
  }
}
