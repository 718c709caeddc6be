import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";

const FAKE_SMI = new URL("../fakes/scripts/nvidia-smi.mjs", import.meta.url).pathname;
let made = 0;

/**
 * A fake nvidia-smi (test/fakes/scripts/nvidia-smi.mjs) behind an executable
 * wrapper in `dir`, as NVIDIA_SMI would name it; `set` rewrites its state.
 */
export async function fakeNvidiaSmi(dir: string, state: Record<string, unknown>) {
  const id = ++made;
  const stateFile = join(dir, `smi-${process.pid}-${id}.json`);
  const bin = join(dir, `nvidia-smi-${process.pid}-${id}`);
  await writeFile(stateFile, JSON.stringify(state));
  await writeFile(bin, `#!/bin/sh\nexec "${process.execPath}" "${FAKE_SMI}" "${stateFile}" "$@"\n`);
  await chmod(bin, 0o755);
  return { bin, set: (s: Record<string, unknown>) => writeFile(stateFile, JSON.stringify(s)) };
}
