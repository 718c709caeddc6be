import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/client/client.js";
import type { Job } from "../../src/client/types.js";
import { listen } from "../helpers/api.js";
import { runCli } from "../helpers/cli.js";
import { rememberSecret } from "../helpers/logs.js";
import { withDeadline } from "../helpers/process.js";
import { type RunningServer, startServer } from "../helpers/server.js";

describe("the quench CLI as a real process against a real server", () => {
  let server: RunningServer;
  let env: Record<string, string>;
  beforeAll(async () => {
    server = await startServer("cli-test");
    const minted = await runCli(["token", "--json"], { DATA_DIR: server.env.DATA_DIR as string });
    expect(minted.code).toBe(0);
    const token = (JSON.parse(minted.stdout) as { token: string }).token;
    rememberSecret(token);
    env = { QUENCH_URL: server.url, QUENCH_TOKEN: token };
  });
  afterAll(() => server?.stop());

  const submitSlow = async () => {
    const run = await runCli(["submit", "--provider", "slow", "--model", "demo", "--json"], env);
    expect(run.code).toBe(0);
    return JSON.parse(run.stdout) as Job;
  };
  const client = () => createClient({ url: server.url, token: env.QUENCH_TOKEN });
  const untilRunning = (id: string) =>
    withDeadline(
      (async () => {
        for await (const e of client().stream(id)) if (e.event === "progress") return;
      })(),
      20_000,
      `job ${id} never streamed`,
    );

  it("token mints a service token with the scopes asked for", async () => {
    const run = await runCli(["token", "--scope", "jobs:read", "--sub", "ci", "--json"], {
      DATA_DIR: server.env.DATA_DIR as string,
    });
    expect(run.code).toBe(0);
    const minted = JSON.parse(run.stdout) as { token: string; sub: string; scopes: string[] };
    rememberSecret(minted.token);
    expect(minted).toMatchObject({ sub: "ci", scopes: ["jobs:read"] });
    const readOnly = await runCli(["submit"], {
      QUENCH_URL: server.url,
      QUENCH_TOKEN: minted.token,
    });
    expect(readOnly.code).toBe(2);
    expect(readOnly.stderr).toMatch(/^quench: .*jobs:submit/);
    const bad = await runCli(["token", "--scope", "jobs:everything"], {
      DATA_DIR: server.env.DATA_DIR as string,
    });
    expect(bad).toMatchObject({ code: 2, stdout: "" });
    expect(bad.stderr).toBe(
      "quench: unknown scope jobs:everything: choose from jobs:submit, jobs:read, jobs:cancel, jobs:admin\n",
    );
  });

  it("submit --wait follows a demo job to completed and exits 0", async () => {
    const run = await runCli(["submit", "--wait"], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^submitted job [0-9a-f-]{36}\n/);
    expect(run.stdout).toMatch(/job [0-9a-f-]{36} completed after /);
    expect(run.stdout).toMatch(/demo\s+demo\/demo\s+completed/);
  });

  it("submit --wait --json writes one JSON event per line, the final job last", async () => {
    const run = await runCli(["submit", "--wait", "--json", "--prompt", "hello"], env);
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; data: Job });
    expect(lines[0]?.event).toBe("job");
    expect(lines.map((l) => l.event)).toContain("progress");
    expect(lines.at(-2)).toEqual({ event: "end", data: { status: "completed" } });
    expect(lines.at(-1)?.event).toBe("final");
    expect(lines.at(-1)?.data).toMatchObject({
      status: "completed",
      executions: [{ key: "demo" }],
    });
  });

  it("submit --file - reads a whole job from stdin; --file with execution flags is a usage error", async () => {
    const body = {
      executions: [
        { key: "first", provider: "demo", model: "demo", input: { messages: [] } },
        { key: "second", provider: "demo", model: "demo", input: {}, depends_on: ["first"] },
      ],
      metadata: { from: "stdin" },
    };
    const run = await runCli(["submit", "--file", "-", "--wait", "--json"], env, {
      stdin: JSON.stringify(body),
    });
    expect(run.code).toBe(0);
    const final = JSON.parse(run.stdout.trim().split("\n").at(-1) as string) as { data: Job };
    expect(final.data).toMatchObject({ status: "completed", metadata: { from: "stdin" } });
    expect(final.data.executions.map((e) => [e.key, e.status])).toEqual([
      ["first", "completed"],
      ["second", "completed"],
    ]);
    const mixed = await runCli(["submit", "--file", "-", "--provider", "demo"], env);
    expect(mixed).toMatchObject({
      code: 2,
      stderr:
        "quench: --file holds the whole job: drop --provider, --model, --prompt and --input\n",
    });
    const notJson = await runCli(["submit", "--file", "-"], env, { stdin: "{oops" });
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/^quench: --file - is not valid JSON: /);
  });

  it("cancel prints the response with the time the work took to stop", async () => {
    const job = await submitSlow();
    await untilRunning(job.id);
    const run = await runCli(["cancel", job.id, "--reason", "from the CLI test"], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(
        `^cancelled job ${job.id} \\(was running\\): 1 execution cancelled; work stopped \\d+ ms after the cancel\\n$`,
      ),
    );
    const again = await runCli(["cancel", job.id, "--json"], env);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stderr)).toEqual({
      error: { code: "not_cancellable", message: `job ${job.id} is already cancelled` },
    });
    const final = await client().job(job.id);
    expect(final).toMatchObject({ status: "cancelled", cancel_reason: "from the CLI test" });
  });

  it("resume continues a cancelled job as a new one and --wait follows it; a second resume is refused", async () => {
    const job = await submitSlow();
    await untilRunning(job.id);
    await client().cancel(job.id);
    const run = await runCli(["resume", job.id], env);
    expect(run.code).toBe(0);
    const [first, second] = run.stdout.trim().split("\n");
    expect(first).toMatch(
      new RegExp(`^resumed job ${job.id} as [0-9a-f-]{36}: nothing carried over; runs slow$`),
    );
    const newId = /as ([0-9a-f-]{36})/.exec(first ?? "")?.[1] ?? "";
    expect(second).toBe(`follow it: quench watch ${newId}`);
    expect(await client().job(newId)).toMatchObject({ resumed_from: job.id });
    const again = await runCli(["resume", job.id, "--json"], env);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stderr)).toMatchObject({ error: { code: "conflict" } });
    await client().cancel(newId);
  });

  it("cancel --json prints SPEC's cancel response", async () => {
    const job = await submitSlow();
    await untilRunning(job.id);
    const run = await runCli(["cancel", job.id, "--json"], env);
    expect(run.code).toBe(0);
    const body = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(body).toMatchObject({
      ok: true,
      job_id: job.id,
      previous_status: "running",
      new_status: "cancelled",
      context_cancelled: true,
      executions_cancelled: 1,
    });
    expect(typeof body.stopped_at).toBe("string");
  });

  it("cancel with several ids sends one bulk request: a line per job, exit 2 if any was refused", async () => {
    const [a, b] = [await submitSlow(), await submitSlow()];
    const done = await runCli(["submit", "--wait", "--json"], env);
    const finished = (JSON.parse(done.stdout.trim().split("\n").at(-1) as string) as { data: Job })
      .data;
    const run = await runCli(["cancel", a.id, b.id, finished.id, "--reason", "bulk"], env);
    expect(run.code).toBe(2);
    expect(run.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^cancelled job ${a.id} \\(was (queued|running)\\)$`)),
      expect.stringMatching(new RegExp(`^cancelled job ${b.id} \\(was (queued|running)\\)$`)),
      `job ${finished.id}: job ${finished.id} is already completed (not_cancellable)`,
    ]);
    const [c, d] = [await submitSlow(), await submitSlow()];
    const json = await runCli(["cancel", c.id, d.id, "--json"], env);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ cancelled: 2 });
    expect((await client().job(a.id)).cancel_reason).toBe("bulk");
  });

  it("watch follows a job to its end and exits 1 when it was cancelled", async () => {
    const job = await submitSlow();
    let sawProgress: () => void = () => {};
    const progressed = new Promise<void>((resolve) => {
      sawProgress = resolve;
    });
    const watching = runCli(["watch", job.id], env, {
      onStdout: (text) => {
        if (/slow: \d+ chars/.test(text)) sawProgress();
      },
    });
    await withDeadline(progressed, 20_000, "watch printed no progress");
    await client().cancel(job.id);
    const run = await watching;
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/job [0-9a-f-]{36}\s+running/);
    expect(run.stdout).toMatch(/slow\s+slow\/demo\s+cancelled.*\(partial\)/);
    expect(run.stdout).toMatch(
      new RegExp(
        `job ${job.id} cancelled after .* \\(cancelled by service:cli\\); work stopped \\d+ ms after the cancel\\n$`,
      ),
    );
  });

  it("watch of a completed job exits 0 at once", async () => {
    const done = await runCli(["submit", "--wait", "--json"], env);
    const id = (JSON.parse(done.stdout.trim().split("\n").at(-1) as string) as { data: Job }).data
      .id;
    const run = await runCli(["watch", id], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`job ${id} completed after`);
  });

  it("jobs lists your jobs as a table, and as JSON with --json", async () => {
    const job = await submitSlow();
    await client().cancel(job.id);
    const table = await runCli(["jobs", "--limit", "50"], env);
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trim().split("\n");
    expect(header).toMatch(/^ID\s+STATUS\s+CREATED\s+TIME\s+EXECUTIONS$/);
    expect(rows.find((r) => r.startsWith(job.id))).toMatch(/cancelled/);
    const cancelled = await runCli(["jobs", "--status", "cancelled", "--json"], env);
    const page = JSON.parse(cancelled.stdout) as { jobs: Job[] };
    expect(page.jobs.length).toBeGreaterThan(0);
    expect(page.jobs.every((j) => j.status === "cancelled")).toBe(true);
    expect(page.jobs.map((j) => j.id)).toContain(job.id);
  });

  it("signs in with QUENCH_PRIVATE_KEY and sees only the wallet's jobs", async () => {
    const key = generatePrivateKey();
    rememberSecret(key);
    const wallet = { QUENCH_URL: server.url, QUENCH_PRIVATE_KEY: key };
    expect((await runCli(["jobs"], wallet)).stdout).toBe(
      "no jobs yet: `quench submit` starts one\n",
    );
    const submitted = await runCli(["submit", "--json"], wallet);
    expect(submitted.code).toBe(0);
    const job = JSON.parse(submitted.stdout) as Job;
    expect(job.owner).toMatch(/^0x[0-9a-fA-F]{40}$/);
    const listed = await runCli(["jobs", "--json"], wallet);
    expect((JSON.parse(listed.stdout) as { jobs: Job[] }).jobs.map((j) => j.id)).toEqual([job.id]);
  });

  it("reuses a wallet session across commands, and signs in afresh when the server refuses a cached one", async () => {
    const key = generatePrivateKey();
    rememberSecret(key);
    const dir = await mkdtemp(join(tmpdir(), "quench-cache-"));
    const cacheFile = join(dir, "sessions.json");
    const wallet = {
      QUENCH_URL: server.url,
      QUENCH_PRIVATE_KEY: key,
      QUENCH_SESSION_CACHE: cacheFile,
    };
    const address = privateKeyToAccount(key).address;
    const signIns = () =>
      server.proc
        .stdout()
        .split("\n")
        .filter((l) => l.includes('"msg":"wallet signed in"') && l.includes(address)).length;
    try {
      expect((await runCli(["jobs"], wallet)).code).toBe(0);
      expect((await runCli(["jobs"], wallet)).code).toBe(0);
      expect((await runCli(["submit", "--json"], wallet)).code).toBe(0);
      expect(signIns()).toBe(1);
      const text = await readFile(cacheFile, "utf8");
      expect(text).not.toContain(key.slice(2));
      expect((await stat(cacheFile)).mode & 0o777).toBe(0o600);
      const entries = JSON.parse(text) as Record<string, { token: string; expires_at: string }>;
      rememberSecret(...Object.values(entries).map((e) => e.token));

      // The server no longer takes the cached session: the command still works, after one sign-in.
      for (const entry of Object.values(entries)) entry.token = "stale-session-token";
      await writeFile(cacheFile, JSON.stringify(entries));
      const listed = await runCli(["jobs", "--json"], wallet);
      expect(listed.code).toBe(0);
      expect((JSON.parse(listed.stdout) as { jobs: Job[] }).jobs).toHaveLength(1);
      expect(signIns()).toBe(2);
      expect(await readFile(cacheFile, "utf8")).not.toContain("stale-session-token");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("--help anywhere prints that command's help and runs nothing", async () => {
    const before = await client().jobs({ limit: 100 });
    const submitHelp = await runCli(["submit", "--prompt", "would cost GPU time", "--help"], env);
    expect(submitHelp).toMatchObject({ code: 0, stderr: "" });
    expect(submitHelp.stdout).toMatch(/^Usage: quench submit \[options\]/);
    expect(submitHelp.stdout).toContain("--prompt <text>");
    const after = await client().jobs({ limit: 100 });
    expect(after.jobs.map((j) => j.id)).toEqual(before.jobs.map((j) => j.id));
    for (const args of [
      ["cancel", "--help"],
      ["serve", "--help"],
      ["watch", "-h"],
      ["help", "output"],
    ]) {
      const run = await runCli(args, env, { timeoutMs: 10_000 });
      expect(run.code, args.join(" ")).toBe(0);
      expect(run.stdout).toMatch(/^Usage: quench \w+/);
    }
    const top = await runCli(["--help"], {});
    expect(top.code).toBe(0);
    for (const command of ["submit", "cancel", "resume", "watch", "output", "jobs", "token"]) {
      expect(top.stdout).toContain(command);
    }
  });

  it("output prints a job's text, and a cancelled job's partial text", async () => {
    const done = await runCli(["submit", "--prompt", "print me back", "--wait", "--json"], env);
    const finished = (JSON.parse(done.stdout.trim().split("\n").at(-1) as string) as { data: Job })
      .data;
    const printed = await runCli(["output", finished.id], env);
    expect(printed.code).toBe(0);
    expect(printed.stdout).toMatch(/^You asked: "print me back"\./);
    const job = await submitSlow();
    await untilRunning(job.id);
    await client().cancel(job.id);
    const partial = await runCli(["output", job.id, "--json"], env);
    const rows = JSON.parse(partial.stdout) as { key: string; status: string; partial: boolean }[];
    expect(rows).toEqual([
      expect.objectContaining({ key: "slow", status: "cancelled", partial: true }),
    ]);
  });

  it("a bad token, an unknown job and bad usage exit 2 with one clear line", async () => {
    const badToken = await runCli(["jobs"], { QUENCH_URL: server.url, QUENCH_TOKEN: "nonsense" });
    expect(badToken).toMatchObject({ code: 2, stdout: "" });
    expect(badToken.stderr).toBe(
      "quench: the bearer token is not a JWT (check QUENCH_TOKEN or QUENCH_PRIVATE_KEY)\n",
    );
    const id = "6f1f4a52-0000-4000-8000-000000000000";
    const unknown = await runCli(["watch", id], env);
    expect(unknown).toMatchObject({ code: 2, stderr: `quench: job ${id} does not exist\n` });
    const noCredentials = await runCli(["jobs"], { QUENCH_URL: server.url });
    expect(noCredentials.code).toBe(2);
    expect(noCredentials.stderr).toMatch(/^quench: not signed in: set QUENCH_TOKEN/);
    const badKey = await runCli(["jobs"], { QUENCH_URL: server.url, QUENCH_PRIVATE_KEY: "0x12" });
    expect(badKey.stderr).toBe(
      "quench: QUENCH_PRIVATE_KEY must be a private key of 64 hex digits\n",
    );
    const badFlag = await runCli(["jobs", "--colour"], env);
    expect(badFlag).toMatchObject({ code: 2, stderr: "quench: unknown option '--colour'\n" });
    const typo = await runCli(["submit", "--promt", "hi"], env);
    expect(typo).toMatchObject({
      code: 2,
      stdout: "",
      stderr: "quench: unknown option '--promt' (did you mean --prompt?)\n",
    });
    const badCommand = await runCli(["frobnicate"], env);
    expect(badCommand).toMatchObject({
      code: 2,
      stderr: "quench: unknown command 'frobnicate'; quench --help lists them\n",
    });
    const nearCommand = await runCli(["cancle", id], env);
    expect(nearCommand.stderr).toBe(
      "quench: unknown command 'cancle' (did you mean cancel?); quench --help lists them\n",
    );
    const closed = await listen({ fetch: () => new Response("") });
    await closed.close();
    const down = await runCli(["jobs", "--url", closed.url], env);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(
      /^quench: cannot reach quench: .*ECONNREFUSED.*is the server running/,
    );
  });
});
