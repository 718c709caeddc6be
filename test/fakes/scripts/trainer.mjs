// A fake training script for the `process` provider. Reads {"model", "input"}
// on stdin; input: {pidFile, runMs, ignoreTerm, exitCode, leaveGrandchild}.
// Spawns a grandchild in its own process group, writes both pids to pidFile,
// prints progress lines, then its result as the last stdout line.
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
  setTimeout(() => {
    clearInterval(ticker);
    if (!input.leaveGrandchild) grandchild.kill("SIGKILL");
    console.log(JSON.stringify({ loss: 0.125, steps: step }));
    process.exit(input.exitCode ?? 0);
  }, input.runMs ?? 0);
});
