import { availableParallelism, cpus } from "node:os";
import { cancelBench } from "./cancel.js";
import { cardBench } from "./card.js";
import { clusterBench } from "./cluster.js";
import { contextBench } from "./context.js";
import { httpBench } from "./http.js";
import { peopleBench } from "./people.js";
import { progressBench } from "./progress.js";
import { remoteBench } from "./remote.js";
import { fmt, type Stats } from "./stats.js";
import { throughputBench } from "./throughput.js";
import { webhookBench } from "./webhooks.js";

/**
 * `npm run bench [context|cancel|http|remote|webhooks|progress|cluster|people|throughput]`: prints Markdown ready for BENCHMARKS.md.
 * `http` and `cluster` need DATABASE_URL (a Postgres server; `cluster` runs several processes).
 * Every loop is bounded in count; network traffic stays on loopback. The
 * cancel benchmark uses the embedded database, or DATABASE_URL's server (in a
 * database it creates and drops) when that is set.
 */
// Measure the product as deployed: production runs plain `node dist/…`, without
// the source maps tsx turns on (they make every error's stack costly to read).
process.setSourceMapsEnabled(false);
const only = process.argv[2];
/** A Markdown table row of a latency distribution (median, p95, p99, min). */
const STATS_HEADER = "| measurement | median | p95 | p99 | min |\n|---|---|---|---|---|";
const row = (name: string, s: Stats) =>
  `| ${name} | ${fmt(s.median)} | ${fmt(s.p95)} | ${fmt(s.p99)} | ${fmt(s.min)} |`;
const machine = `${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"}), Node ${process.version}`;
console.log(
  `# quench benchmarks\n\nMachine: ${machine}. Date: ${new Date().toISOString().slice(0, 10)}.\n`,
);

if (only === undefined || only === "context") {
  const c = contextBench();
  const row = (name: string, s: Stats) =>
    `| ${name} | ${fmt(s.median)} | ${fmt(s.p95)} | ${fmt(s.p99)} | ${fmt(s.median / c.bare.median)}× |`;
  console.log(
    "## Context library: create and cancel a job context with 10 children (µs per tree)\n",
  );
  console.log(
    `Each sample is the mean over 2,000 trees; ${c.lazy.samples} samples after warm-up.\n`,
  );
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
  console.log(`\nTargets (tree under 20 µs, heap growth under 5 MB): ${ok ? "met" : "MISSED"}\n`);
}

if (only === undefined || only === "cancel") {
  const r = await cancelBench(1_000);
  console.log(
    `## Cancel: ${r.jobs.toLocaleString("en")} jobs streaming at once, database ${r.driver} (ms)\n`,
  );
  console.log(
    "Each job holds an open streaming connection to a loopback fake provider in another process;",
  );
  console.log(
    "times run from the `cancelJob()` call to that process seeing the job's socket close.\n",
  );
  console.log(STATS_HEADER);
  console.log(row("one at a time: cancelJob() → socket closed", r.oneByOne));
  console.log(row("one at a time: cancelJob() → returned with stopped_at", r.oneByOneAck));
  console.log(row("all at once: cancelJob() → each socket closed", r.together));
  console.log(
    `\nAll ${r.jobs.toLocaleString("en")} closed ${fmt(r.togetherTotalMs)} ms after the cancels began.`,
  );
  console.log(`Heap per running execution: ${fmt(r.heapPerExecutionKb, 1)} KB.\n`);
  const ok =
    r.oneByOne.median < 1 &&
    r.oneByOne.p99 < 5 &&
    r.togetherTotalMs < 200 &&
    r.heapPerExecutionKb < 50;
  console.log(
    `Targets (p50 < 1 ms, p99 < 5 ms, all closed < 200 ms, < 50 KB per execution): ${ok ? "met" : "MISSED"}`,
  );
}

if (only === undefined || only === "http") {
  const r = await httpBench();
  console.log(`\n## HTTP: cancel and submit through the API, database ${r.driver} (ms)\n`);
  console.log(
    `${r.jobs.toLocaleString("en")} jobs streaming at once (fake provider in its own process); API and runner in one process;`,
  );
  console.log("clients over loopback with undici, a service token (HS256).\n");
  console.log(STATS_HEADER);
  console.log(row("POST /jobs/:id/cancel sent → provider socket closed", r.cancelToClose));
  console.log(row("POST /jobs/:id/cancel sent → 200 received (with stopped_at)", r.cancelResponse));
  console.log(row("GET /jobs/:id during the submit load", r.getDuringLoad));
  console.log(
    `\nSubmit rate: ${r.submitted.toLocaleString("en")} POST /jobs (16 at a time) in ${fmt(r.submitSeconds)} s = ${fmt(r.submitsPerSecond, 0)} jobs/s.\n`,
  );
  const ok = r.cancelToClose.median < 3 && r.cancelToClose.p99 < 10;
  console.log(`Targets (cancel → close p50 < 3 ms, p99 < 10 ms): ${ok ? "met" : "MISSED"}`);
}

if (only === undefined || only === "webhooks") {
  const r = await webhookBench();
  console.log(`\n## Webhooks: a job's end → the receiver has it, database ${r.driver} (ms)\n`);
  console.log(
    `${r.jobs} demo jobs one at a time, one webhook for every job, a healthy receiver on loopback;`,
  );
  console.log(
    "from the job's end announced on its instance (after the commit) to the request received.\n",
  );
  console.log(STATS_HEADER);
  console.log(row("job ended → webhook received", r.endToReceived));
  console.log(
    `\nThe cancel benchmark (${r.cancelPlain.jobs.toLocaleString("en")} jobs), in one run, without webhooks and with 10 registered (one receiver hangs every request):\n`,
  );
  console.log(STATS_HEADER);
  console.log(row("no webhooks: cancelJob() → socket closed", r.cancelPlain.oneByOne));
  console.log(
    row("10 webhooks, 1 hanging: cancelJob() → socket closed", r.cancelWithHooks.oneByOne),
  );
  console.log(
    row("no webhooks: cancelJob() → returned with stopped_at", r.cancelPlain.oneByOneAck),
  );
  console.log(
    row(
      "10 webhooks, 1 hanging: cancelJob() → returned with stopped_at",
      r.cancelWithHooks.oneByOneAck,
    ),
  );
  console.log(row("no webhooks: all at once → each socket closed", r.cancelPlain.together));
  console.log(
    row("10 webhooks, 1 hanging: all at once → each socket closed", r.cancelWithHooks.together),
  );
  const ok = r.endToReceived.median < 20;
  console.log(`\nTarget (end → received p50 < 20 ms): ${ok ? "met" : "MISSED"}`);
}

if (only === undefined || only === "progress") {
  const r = await progressBench();
  console.log(`\n## Training runs: progress and stop, database ${r.driver} (ms)\n`);
  console.log(
    `A \`process\` job printing a progress report every 20 ms (${r.reports} reports), followed by an SSE client on loopback;`,
  );
  console.log(
    `then ${r.cancels} runs (script + grandchild) cancelled one at a time while reporting.\n`,
  );
  console.log(STATS_HEADER);
  console.log(row("report printed → SSE progress event received", r.printedToEvent));
  console.log(row("cancelJob() → returned, process group gone", r.cancelToGroupGone));
  const ok = r.printedToEvent.median < 5;
  console.log(`\nTarget (printed → event p50 < 5 ms): ${ok ? "met" : "MISSED"}`);
}

if (only === "throughput") {
  // Not in the default run: 20,000 jobs per database take minutes. BENCH_JOBS sets the count.
  const jobs = Number(process.env.BENCH_JOBS ?? 20_000);
  console.log(
    `\n## Throughput: ${jobs.toLocaleString("en")} trivial jobs, one runner, concurrency 32\n`,
  );
  console.log(
    "`http`: each job's one execution calls a loopback server in a process of its own (bench/json-server.mjs) that answers at once.",
  );
  console.log(
    "No provider I/O: the same jobs on a bench-only provider that answers at once, without I/O (the runner's own cost, as a queue's no-op task).\n",
  );
  console.log("| database | `http`, jobs/s | no provider I/O, jobs/s |\n|---|---|---|");
  const counted = await throughputBench({ jobs, driver: "postgres", countStatements: true });
  const countedBare = await throughputBench({
    jobs,
    driver: "postgres",
    countStatements: true,
    provider: "none",
  });
  const cells = (a: { jobsPerSecond: number }, b: { jobsPerSecond: number }) =>
    `${fmt(a.jobsPerSecond, 0)} | ${fmt(b.jobsPerSecond, 0)} |`;
  console.log(
    `| Postgres of its own (fsync off, pg_stat_statements) | ${cells(counted, countedBare)}`,
  );
  if (process.env.DATABASE_URL) {
    const shared = await throughputBench({ jobs, driver: "postgres" });
    const sharedBare = await throughputBench({ jobs, driver: "postgres", provider: "none" });
    console.log(`| Postgres at DATABASE_URL | ${cells(shared, sharedBare)}`);
  }
  const embedded = await throughputBench({ jobs, driver: "pglite" });
  const embeddedBare = await throughputBench({ jobs, driver: "pglite", provider: "none" });
  console.log(`| PGlite (in memory) | ${cells(embedded, embeddedBare)}`);
  const st = counted.statements;
  if (st) {
    console.log(
      `\nStatements per job, submit to completed: ${fmt(st.perJob)}; commits (transactions, autocommits included) per job: ${fmt(st.commitsPerJob)}.\n`,
    );
    console.log(
      `The server's execution time per job (pg_stat_statements' total_exec_time, no I/O wait on the client): ${fmt(st.usPerJob, 0)} µs.\n`,
    );
    console.log("| statement | per job | server µs per job |\n|---|---|---|");
    for (const k of st.byKind)
      console.log(`| ${k.kind} | ${fmt(k.perJob, 3)} | ${fmt(k.usPerJob, 0)} |`);
  }
}

if (only === undefined || only === "remote") {
  const r = await remoteBench();
  console.log(`\n## Remote stop: cancel → the provider's cancel call, database ${r.driver} (ms)\n`);
  console.log(
    `${r.jobs} jobs per kind waiting in loopback fakes of each provider's API (in the bench's process);`,
  );
  console.log("each cancelled one at a time with POST /jobs/:id/cancel.\n");
  console.log(STATS_HEADER);
  for (const k of r.kinds) {
    console.log(
      row(
        `${k.kind}: POST /jobs/:id/cancel sent → provider's cancel call received`,
        k.toCancelCall,
      ),
    );
    console.log(row(`${k.kind}: POST /jobs/:id/cancel sent → 200 received`, k.toResponse));
  }
  const ok = r.kinds.every((k) => k.toCancelCall.median < 3 && k.toCancelCall.p99 < 10);
  console.log(
    `\nTargets (cancel → provider's cancel call p50 < 3 ms, p99 < 10 ms): ${ok ? "met" : "MISSED"}`,
  );
}

if ((only === undefined && process.env.DATABASE_URL) || only === "cluster") {
  const r = await clusterBench();
  console.log(`\n## Cluster: API on A, job on B, one Postgres (ms)\n`);
  console.log(
    `${r.jobs} jobs streaming on B (ROLE=runner), each cancelled one at a time by POST /jobs/:id/cancel to A (ROLE=api).\n`,
  );
  console.log(STATS_HEADER);
  console.log(row("cancel sent to A → B's provider socket closed (LISTEN/NOTIFY)", r.notified));
  console.log(
    row(`the same, B polling only (LISTEN_NOTIFY=off, CANCEL_POLL_MS=${r.pollMs})`, r.polled),
  );
  console.log("\n| runners | trivial jobs | first claim → last finish (s) | jobs/s |");
  console.log("|---|---|---|---|");
  for (const t of r.throughput)
    console.log(`| ${t.runners} | ${t.jobs} | ${fmt(t.seconds)} | ${fmt(t.perSecond, 0)} |`);
  const ok = r.notified.median < 10 && r.notified.p99 < 50 && r.polled.p99 < r.pollMs + 100;
  console.log(
    `\nTargets (p50 < 10 ms, p99 < 50 ms; polling only < CANCEL_POLL_MS + 100 ms): ${ok ? "met" : "MISSED"}`,
  );
}

if (only === undefined || only === "people") {
  const r = await peopleBench();
  console.log("\n## People-facing parts: CLI start-up and the dashboard script\n");
  console.log("`quench --help` run to its exit, 21 times each (ms):\n");
  console.log(STATS_HEADER);
  console.log(row("node bin/quench.js --help (a checkout: source through tsx)", r.source));
  if (r.dist) console.log(row("node dist/cli/main.js --help (the image)", r.dist));
  else console.log("\n(dist/ not built: `npm run build` adds the image's figure.)");
  console.log(
    `\nDashboard script, minified as production serves it: ${fmt(r.bundle.kb, 0)} KB, ${fmt(r.bundle.gzipKb, 0)} KB gzipped; bundled on the first request in ${fmt(r.bundle.ms, 0)} ms.`,
  );
  const card = await cardBench();
  if (card === undefined) console.log("\n(Chromium not installed: no dashboard timing.)");
  else {
    console.log(
      "\nA job's end → its card showing it in Chromium (ms; 20 demo jobs, one at a time):\n",
    );
    console.log(STATS_HEADER);
    console.log(row("job finished_at → card shows completed", card));
  }
}
