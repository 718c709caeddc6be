// A fake nvidia-smi for `gpu_check` tests, run as: node nvidia-smi.mjs <stateFile> <nvidia-smi args>.
// The state file (JSON): {mode: "normal" | "hang" | "fail", pidFile?, mib?, lingerMs?}.
// normal: lists the pids named in pidFile ({child, grandchild}) as holding `mib` MiB while
// they live, and each dead one for `lingerMs` after it was first seen dead (null: forever),
// the way a zombie CUDA context keeps memory after its process exits.
// hang: never answers. fail: the driver error nvidia-smi prints, exit 9.
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const [stateFile, ...args] = process.argv.slice(2);
if (
  !args.includes("--query-compute-apps=pid,used_memory") ||
  !args.includes("--format=csv,noheader,nounits")
) {
  console.error(`unexpected arguments: ${args.join(" ")}`);
  process.exit(2);
}
const state = JSON.parse(readFileSync(stateFile, "utf8"));
if (state.mode === "hang") setInterval(() => {}, 1_000);
else if (state.mode === "fail") {
  console.error("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.");
  process.exit(9);
} else {
  const alive = (pid) => {
    try {
      return !/^\S+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return false;
    }
  };
  const deadFile = `${stateFile}.dead.json`;
  const dead = existsSync(deadFile) ? JSON.parse(readFileSync(deadFile, "utf8")) : {};
  const pids =
    state.pidFile && existsSync(state.pidFile)
      ? Object.values(JSON.parse(readFileSync(state.pidFile, "utf8")))
      : [];
  const lines = [];
  for (const pid of pids) {
    if (!alive(pid)) {
      dead[pid] ??= Date.now();
      if (state.lingerMs !== null && Date.now() - dead[pid] >= (state.lingerMs ?? 0)) continue;
    }
    lines.push(`${pid}, ${state.mib ?? 1024}`);
  }
  writeFileSync(deadFile, JSON.stringify(dead));
  if (lines.length > 0) console.log(lines.join("\n"));
}
