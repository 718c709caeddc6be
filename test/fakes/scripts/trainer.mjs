// A fake training script for the `process` provider. Reads {"model", "input"}
// on stdin; input: {pidFile, runMs, ignoreTerm, exitCode, leaveGrandchild,
// reportEveryMs, total, reports}. Spawns a grandchild in its own process
// group, writes both pids to pidFile, prints chatter lines ("step N") and,
// with reportEveryMs, progress reports (`{"progress": {step, total, message}}`,
// at most `reports` of them, then chatter only), then its result as the last
// stdout line.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";

let raw = "";
process.stdin.on("data", (d) => (raw += d));
process.stdin.on("end", () => {
  const { input } = JSON.parse(raw);
  if (input.ignoreTerm) process.on("SIGTERM", () => {});
  const grandchildCode = input.ignoreTerm
    ? "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);"
    : "setInterval(() => {}, 1000);";
  const grandchild = spawn(process.execPath, ["-e", grandchildCode], { stdio: "ignore" });
  writeFileSync(input.pidFile, JSON.stringify({ child: process.pid, grandchild: grandchild.pid }));
  let step = 0;
  const ticker = setInterval(() => console.log(`step ${++step}`), 20);
  let reported = 0;
  const reporter =
    input.reportEveryMs === undefined
      ? undefined
      : setInterval(() => {
          if (input.reports !== undefined && reported >= input.reports) return;
          reported++;
          const at = performance.timeOrigin + performance.now();
          console.log(
            JSON.stringify({
              progress: {
                step: reported,
                total: input.total ?? 1000,
                message: `batch ${reported}`,
                at,
              },
            }),
          );
        }, input.reportEveryMs);
  setTimeout(() => {
    clearInterval(ticker);
    clearInterval(reporter);
    if (!input.leaveGrandchild) grandchild.kill("SIGKILL");
    console.log(JSON.stringify({ loss: 0.125, steps: step }));
    process.exit(input.exitCode ?? 0);
  }, input.runMs ?? 0);
});
