import { readFile } from "node:fs/promises";
import { withDeadline } from "./process.js";

/** Alive and not a zombie (an orphan PID 1 has not reaped yet counts as gone). */
export async function alive(pid: number): Promise<boolean> {
  try {
    return !/^\S+ \(.*\) [ZX] /.test(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** The pids test/fakes/scripts/trainer.mjs wrote to `file` (its own and its grandchild's), once written. */
export async function pidsFrom(file: string): Promise<{ child: number; grandchild: number }> {
  return withDeadline(
    (async () => {
      for (;;) {
        try {
          return JSON.parse(await readFile(file, "utf8"));
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    })(),
    10_000,
    "the script never wrote its pids",
  );
}
