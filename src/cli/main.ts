import { type ParseArgsConfig, parseArgs } from "node:util";
import { isQuenchError } from "../client/errors.js";
import { cancelJob, cancelJobs } from "./commands/cancel.js";
import { listJobs } from "./commands/jobs.js";
import { describeResume } from "./commands/resume.js";
import { submitBody } from "./commands/submit.js";
import { followJob } from "./commands/watch.js";
import { type Credentials, credentials, DEFAULT_URL } from "./connect.js";
import { describeFailure, EXIT, UsageError } from "./errors.js";

const USAGE = `quench — run jobs on GPU providers and stop them the moment you ask

usage: quench <command> [options]

commands:
  serve                      run the service (same as npm start)
  migrate                    apply database migrations
  token [--scope S]… [--sub NAME] [--ttl SECONDS]
                             mint a development service token (scopes: jobs:submit,
                             jobs:read, jobs:cancel by default; jobs:admin on request)
  submit [--provider P]… [--model M]… [--prompt TEXT | --input JSON]
         [--file FILE|-] [--timeout MS] [--max-parallel N] [--metadata JSON]
         [--idempotency-key KEY] [--wait]
                             submit a job (a demo job without flags); --wait follows it
  cancel <id> [<id>…] [--reason TEXT]
                             cancel a job and print how fast its work stopped;
                             several ids go in one bulk request
  resume <id> [--wait]       continue a stopped job as a new one: its completed
                             executions are kept, the rest run again
  watch <id>                 follow a job live until it ends
  jobs [--status S] [--limit N] [--cursor C]
                             list your jobs, newest first

options for every command:
  --url URL    the server (default: QUENCH_URL, else ${DEFAULT_URL})
  --json       machine-readable output (errors too, on stderr)
  -h, --help   this text

credentials: QUENCH_TOKEN (a service or session token), else QUENCH_PRIVATE_KEY
(a wallet key: quench signs in with Sign-In with Ethereum).
exit codes: 0 success; 1 the job failed, ended partial, timed out or was
cancelled (submit --wait, watch); 2 usage, credentials or a refused request.
`;

/** SPEC's limit of one bulk cancel. */
const MAX_BULK = 1_000;

const COMMON = {
  url: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies ParseArgsConfig["options"];

function parse<O extends ParseArgsConfig["options"]>(args: string[], options: O, positionals = 0) {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: O & typeof COMMON; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({ args, options: { ...COMMON, ...options }, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument ${parsed.positionals[positionals]}`);
  }
  return parsed;
}

const out = (text: string) => void process.stdout.write(text);
const screen = { write: out, tty: process.stdout.isTTY === true };

async function readStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

/** Runs one command; resolves with the exit code. */
async function run(argv: string[], auth: Credentials): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "-h" || command === "--help") {
    out(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  switch (command) {
    case "serve":
      parse(rest, {});
      await import("../server.js");
      return new Promise<number>(() => {}); // the server owns the process from here
    case "migrate":
      parse(rest, {});
      await import("../migrate.js");
      return new Promise<number>(() => {}); // migrate exits on its own
    case "token": {
      const { values } = parse(rest, {
        scope: { type: "string", multiple: true },
        sub: { type: "string" },
        ttl: { type: "string" },
      });
      // Configuration, secrets and jose load only here.
      const { mintToken } = await import("./commands/token.js");
      const minted = await mintToken({
        env: process.env,
        scopes: values.scope,
        sub: values.sub,
        ttl: values.ttl,
      });
      out(values.json ? `${JSON.stringify(minted)}\n` : `${minted.token}\n`);
      return EXIT.ok;
    }
    case "submit": {
      const { values } = parse(rest, {
        file: { type: "string", short: "f" },
        provider: { type: "string", short: "p", multiple: true },
        model: { type: "string", short: "m", multiple: true },
        prompt: { type: "string" },
        input: { type: "string" },
        timeout: { type: "string" },
        "max-parallel": { type: "string" },
        metadata: { type: "string" },
        "idempotency-key": { type: "string" },
        wait: { type: "boolean", default: false },
      });
      const body = await submitBody(values, readStdin);
      const client = await auth.connect(values.url);
      const job = await client.submit(body, { idempotencyKey: values["idempotency-key"] });
      if (!values.wait) {
        out(
          values.json
            ? `${JSON.stringify(job)}\n`
            : `submitted job ${job.id}\nfollow it: quench watch ${job.id}\n`,
        );
        return EXIT.ok;
      }
      if (!values.json) out(`submitted job ${job.id}\n`);
      return followJob(client, job.id, { json: values.json, screen, signal: interruptible() });
    }
    case "cancel": {
      const { values, positionals } = parse(rest, { reason: { type: "string" } }, MAX_BULK);
      const id = required(positionals[0], "cancel <id> [<id>…]");
      const client = await auth.connect(values.url);
      const o = { reason: values.reason, json: values.json, write: out };
      if (positionals.length === 1) {
        await cancelJob(client, id, o);
        return EXIT.ok;
      }
      return (await cancelJobs(client, positionals, o)) ? EXIT.ok : EXIT.usage;
    }
    case "resume": {
      const { values, positionals } = parse(rest, { wait: { type: "boolean", default: false } }, 1);
      const id = required(positionals[0], "resume <id>");
      const client = await auth.connect(values.url);
      const job = await client.resume(id);
      if (values.json && !values.wait) out(`${JSON.stringify(job)}\n`);
      else if (!values.json) out(`${describeResume(id, job)}\n`);
      if (!values.wait) return EXIT.ok;
      return followJob(client, job.id, { json: values.json, screen, signal: interruptible() });
    }
    case "watch": {
      const { values, positionals } = parse(rest, {}, 1);
      const id = required(positionals[0], "watch <id>");
      const client = await auth.connect(values.url);
      return followJob(client, id, { json: values.json, screen, signal: interruptible() });
    }
    case "jobs": {
      const { values } = parse(rest, {
        status: { type: "string" },
        limit: { type: "string" },
        cursor: { type: "string" },
      });
      const client = await auth.connect(values.url);
      await listJobs(client, { ...values, write: out });
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command ${command}; quench --help lists them`);
  }
}

function required(value: string | undefined, usage: string): string {
  if (value === undefined) throw new UsageError(`usage: quench ${usage}`);
  return value;
}

// `quench jobs | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

const argv = process.argv.slice(2);
const json = argv.includes("--json");
const interrupt = new AbortController();

/** Ctrl-C stops following a job; it never cancels the job. */
function interruptible(): AbortSignal {
  process.once("SIGINT", () => interrupt.abort());
  return interrupt.signal;
}

/**
 * A cached wallet session the server refused at the first request (its
 * secret rotated, say) is dropped and the command run once more with a fresh
 * sign-in: nothing was done yet. A refusal later on (a session that expired
 * during a long `--wait`) is reported instead: running again could submit twice.
 */
async function runSignedIn(argv: string[]): Promise<number> {
  const cached = credentials(process.env);
  try {
    return await run(argv, cached);
  } catch (err) {
    if (!cached.staleSessionRefused || !isQuenchError(err, "unauthenticated")) throw err;
    return run(argv, credentials(process.env, { fresh: true }));
  }
}

runSignedIn(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (interrupt.signal.aborted) {
      process.exitCode = 130;
      return;
    }
    const failure = describeFailure(err);
    process.stderr.write(
      json ? `${JSON.stringify({ error: failure })}\n` : `quench: ${failure.message}\n`,
    );
    process.exitCode = EXIT.usage;
  },
);
