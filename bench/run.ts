import { availableParallelism, cpus } from "node:os";
import { contextBench } from "./context.js";
import { fmt, type Stats } from "./stats.js";

/** `npm run bench`: prints Markdown ready for BENCHMARKS.md. Loops are bounded in count. */
const machine = `${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"}), Node ${process.version}`;
console.log(
  `# quench benchmarks\n\nMachine: ${machine}. Date: ${new Date().toISOString().slice(0, 10)}.\n`,
);

const c = contextBench();
const row = (name: string, s: Stats) =>
  `| ${name} | ${fmt(s.median)} | ${fmt(s.p95)} | ${fmt(s.p99)} | ${fmt(s.median / c.bare.median)}× |`;
console.log("## Context library: create and cancel a job context with 10 children (µs per tree)\n");
console.log(`Each sample is the mean over 2,000 trees; ${c.lazy.samples} samples after warm-up.\n`);
console.log("| variant | median | p95 | p99 | vs bare |");
console.log("|---|---|---|---|---|");
console.log(row("11 bare AbortControllers wired by hand (floor)", c.bare));
console.log(row("quench/context, signals not read (lazy)", c.lazy));
console.log(row("quench/context, all 11 signals read and listened to", c.signals));
console.log(row("quench/context, root with deadline, all signals read", c.deadlineSignals));
const h = c.heap;
console.log(
  `\n## Context library: heap around ${h.cycles.toLocaleString("en")} create/release cycles under one root\n`,
);
console.log("| heap before | heap after | growth | root's children after |");
console.log("|---|---|---|---|");
console.log(
  `| ${fmt(h.beforeMb)} MB | ${fmt(h.afterMb)} MB | ${fmt(h.growthMb)} MB | ${h.rootChildrenAfter} |`,
);
const ok = c.lazy.median < 20 && h.growthMb < 5 && h.rootChildrenAfter === 0;
console.log(`\nTargets (tree under 20 µs, heap growth under 5 MB): ${ok ? "met" : "MISSED"}`);
