import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { dashboardScript } from "../src/dashboard/bundle.js";
import { type Stats, summarize } from "./stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNS = 21;

/** Wall time of `node <args>` to its exit, `RUNS` times (ms). */
function startUp(args: string[]): Stats {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    execFileSync(process.execPath, args, { cwd: ROOT, stdio: "ignore" });
    times.push(performance.now() - started);
  }
  return summarize(times);
}

/**
 * The people-facing parts: how long `quench` takes to start (its `--help`,
 * no network), from the source through tsx and from dist/ as the image runs
 * it; and the dashboard script as production serves it.
 */
export async function peopleBench() {
  const source = startUp(["bin/quench.js", "--help"]);
  const dist = existsSync(`${ROOT}/dist/cli/main.js`)
    ? startUp(["dist/cli/main.js", "--help"])
    : undefined;
  const started = performance.now();
  const script = await dashboardScript({ minify: true })();
  const bundleMs = performance.now() - started;
  return {
    source,
    dist,
    bundle: {
      ms: bundleMs,
      kb: Buffer.byteLength(script) / 1024,
      gzipKb: gzipSync(script).length / 1024,
    },
  };
}
