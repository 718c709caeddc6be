import { Command, type CommanderError, Option } from "commander";
import type { Credentials } from "./connect.js";
import { DEFAULT_URL } from "./defaults.js";
import { EXIT, UsageError } from "./errors.js";

// Each command loads its code when it runs: `--help` (and a typo) stay quick.
const followJob = async (...args: Parameters<typeof import("./commands/watch.js").followJob>) =>
  (await import("./commands/watch.js")).followJob(...args);

import type { Screen } from "./live-view.js";

/** SPEC's limit of one bulk cancel. */
const MAX_BULK = 1_000;

/** What the commands need from the process: output, input, credentials, Ctrl-C. */
export interface CliIo {
  out: (text: string) => void;
  screen: Screen;
  readStdin: () => Promise<string>;
  auth: Credentials;
  /** Ctrl-C stops following a job; it never cancels the job. */
  interruptible: () => AbortSignal;
  /** Keys typed while `watch` runs on a terminal (`c` asks to cancel, `q` quits); undefined elsewhere. */
  keys?: ((signal: AbortSignal) => AsyncIterable<string>) | undefined;
}

interface Globals {
  url?: string;
  json: boolean;
}

/**
 * The `quench` command line on commander. Chosen over citty for what people
 * hit first: every command has its own `--help`, `--help` anywhere prints
 * help and runs nothing, and an unknown option or command is answered with
 * the closest match ("did you mean --prompt?"). `run` resolves with the
 * exit code; usage errors are CommanderErrors, mapped to exit 2 by the caller.
 */
export function buildProgram(io: CliIo, setCode: (code: number) => void): Command {
  const program = new Command("quench")
    .description("run jobs on GPU providers and stop them the moment you ask")
    .addOption(
      new Option("--url <url>", "the server").default(undefined, `QUENCH_URL, else ${DEFAULT_URL}`),
    )
    .option("--json", "machine-readable output (errors too, on stderr)", false)
    .showSuggestionAfterError(true)
    .showHelpAfterError(false)
    .exitOverride()
    .addHelpText(
      "after",
      `
credentials: QUENCH_TOKEN (a service or session token), else QUENCH_PRIVATE_KEY
(a wallet key: quench signs in with Sign-In with Ethereum).
exit codes: 0 success; 1 the job failed, ended partial, timed out or was
cancelled (submit --wait, watch, resume --wait); 2 usage, credentials or a
refused request.`,
    );
  const globals = (cmd: Command) => cmd.optsWithGlobals() as Globals;
  const connect = (cmd: Command) => io.auth.connect(globals(cmd).url);

  program
    .command("serve")
    .description("run the service (same as npm start)")
    .action(async () => {
      await import("../server.js");
      await new Promise<never>(() => {}); // the server owns the process from here
    });

  program
    .command("migrate")
    .description("apply database migrations")
    .action(async () => {
      await import("../migrate.js");
      await new Promise<never>(() => {}); // migrate exits on its own
    });

  program
    .command("token")
    .description(
      "mint a development service token (scopes: jobs:submit, jobs:read, jobs:cancel by default; jobs:admin on request)",
    )
    .option("--scope <scope...>", "a scope to grant (repeatable)")
    .option("--sub <name>", "the token's subject")
    .option("--ttl <seconds>", "lifetime in seconds")
    .action(async (o: { scope?: string[]; sub?: string; ttl?: string }, cmd: Command) => {
      // Configuration, secrets and jose load only here.
      const { mintToken } = await import("./commands/token.js");
      const minted = await mintToken({ env: process.env, scopes: o.scope, sub: o.sub, ttl: o.ttl });
      io.out(globals(cmd).json ? `${JSON.stringify(minted)}\n` : `${minted.token}\n`);
    });

  program
    .command("submit")
    .description("submit a job (a demo job without options); --wait follows it")
    .option("-f, --file <file>", "a whole POST /jobs body as JSON (- reads stdin)")
    .option("-p, --provider <name...>", "one execution per provider (repeatable)")
    .option("-m, --model <model...>", "the model of each provider, in order (one serves all)")
    .option("--prompt <text>", "a chat prompt as every execution's input")
    .option("--input <json>", "every execution's input as JSON")
    .option("--timeout <ms>", "the job's timeout_ms")
    .option("--max-parallel <n>", "executions running at once")
    .option("--metadata <json>", "the job's metadata as JSON")
    .option("--idempotency-key <key>", "the same key returns the same job")
    .option("--wait", "follow the job to its end", false)
    .action(async (o: SubmitOptions, cmd: Command) => {
      const { json } = globals(cmd);
      const { submitBody } = await import("./commands/submit.js");
      const body = await submitBody({ ...o, "max-parallel": o.maxParallel }, io.readStdin);
      const client = await connect(cmd);
      // Loaded before the submit: the stream must open as soon as the job exists.
      const watch = o.wait ? await import("./commands/watch.js") : undefined;
      const job = await client.submit(body, { idempotencyKey: o.idempotencyKey });
      if (!o.wait) {
        io.out(
          json
            ? `${JSON.stringify(job)}\n`
            : `submitted job ${job.id}\nfollow it: quench watch ${job.id}\n`,
        );
        return;
      }
      if (!json) io.out(`submitted job ${job.id}\n`);
      setCode(
        await (watch?.followJob ?? followJob)(client, job.id, {
          json,
          screen: io.screen,
          signal: io.interruptible(),
        }),
      );
    });

  program
    .command("cancel")
    .description(
      "cancel jobs and print how fast their work stopped; several ids go in one bulk request",
    )
    .argument("<id...>", "the jobs")
    .option("--reason <text>", "why (kept on the job)")
    .action(async (ids: string[], o: { reason?: string }, cmd: Command) => {
      if (ids.length > MAX_BULK) throw new UsageError(`at most ${MAX_BULK} ids in one cancel`);
      const { cancelJob, cancelJobs } = await import("./commands/cancel.js");
      const client = await connect(cmd);
      const options = { reason: o.reason, json: globals(cmd).json, write: io.out };
      if (ids.length === 1) await cancelJob(client, ids[0] as string, options);
      else if (!(await cancelJobs(client, ids, options))) setCode(EXIT.usage);
    });

  program
    .command("resume")
    .description(
      "continue a stopped job as a new one: completed executions are kept, the rest run again",
    )
    .argument("<id>", "the stopped job")
    .option("--wait", "follow the new job to its end", false)
    .action(async (id: string, o: { wait: boolean }, cmd: Command) => {
      const { json } = globals(cmd);
      const client = await connect(cmd);
      const job = await client.resume(id);
      const { describeResume } = await import("./commands/resume.js");
      if (json && !o.wait) io.out(`${JSON.stringify(job)}\n`);
      else if (!json) io.out(`${describeResume(id, job)}\n`);
      if (o.wait) {
        setCode(
          await followJob(client, job.id, { json, screen: io.screen, signal: io.interruptible() }),
        );
      }
    });

  program
    .command("watch")
    .description(
      "follow a job live until it ends; on a terminal, c asks to cancel it (y confirms) and q quits",
    )
    .argument("<id>", "the job")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const client = await connect(cmd);
      setCode(
        await followJob(client, id, {
          json: globals(cmd).json,
          screen: io.screen,
          signal: io.interruptible(),
          keys: io.keys,
        }),
      );
    });

  program
    .command("output")
    .description("print a job's output: each execution's text, partial output included")
    .argument("<id>", "the job")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const client = await connect(cmd);
      const { printOutput } = await import("./commands/output.js");
      printOutput(await client.job(id), { json: globals(cmd).json, write: io.out });
    });

  program
    .command("jobs")
    .description("list your jobs, newest first")
    .option("--status <status>", "only jobs with this status")
    .option("--limit <n>", "how many (1-100)")
    .option("--cursor <cursor>", "the next page, from an earlier --json answer")
    .action(async (o: { status?: string; limit?: string; cursor?: string }, cmd: Command) => {
      const { listJobs } = await import("./commands/jobs.js");
      const client = await connect(cmd);
      await listJobs(client, { ...o, json: globals(cmd).json, write: io.out });
    });

  return program;
}

interface SubmitOptions {
  file?: string;
  provider?: string[];
  model?: string[];
  prompt?: string;
  input?: string;
  timeout?: string;
  maxParallel?: string;
  metadata?: string;
  idempotencyKey?: string;
  wait: boolean;
}

/** One line for a commander usage error: "unknown option '--promt' (did you mean --prompt?)". */
export function usageMessage(err: CommanderError): string {
  const text = err.message
    .replace(/^error: /, "")
    .replace(/\n\(Did you mean (.+)\?\)/, " (did you mean $1?)");
  return err.code === "commander.unknownCommand" ? `${text}; quench --help lists them` : text;
}
