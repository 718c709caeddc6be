import { CommanderError } from "commander";
import { isQuenchError } from "../client/errors.js";
import { type Credentials, credentials } from "./connect.js";
import { describeFailure, EXIT } from "./errors.js";
import { terminalKeys } from "./keys.js";
import { buildProgram, usageMessage } from "./program.js";

const out = (text: string) => void process.stdout.write(text);
const screen = {
  write: out,
  tty: process.stdout.isTTY === true,
  get columns() {
    return process.stdout.columns;
  },
};

async function readStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

/** Runs one command line; resolves with the exit code. Usage errors throw CommanderError. */
async function run(argv: string[], auth: Credentials): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(
    {
      out,
      screen,
      readStdin,
      auth,
      interruptible,
      keys: process.stdin.isTTY && process.stdout.isTTY ? terminalKeys : undefined,
    },
    (c) => {
      code = c;
    },
  );
  // Usage errors are reported once, in our format, by the caller: commander prints none.
  for (const cmd of [program, ...program.commands]) cmd.configureOutput({ outputError: () => {} });
  await program.parseAsync(argv, { from: "user" });
  return code;
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
    if (err instanceof CommanderError) {
      // --help (anywhere) and --version print and end here, having run nothing.
      if (err.exitCode === 0) {
        process.exitCode = EXIT.ok;
        return;
      }
      if (err.code === "commander.help") {
        process.exitCode = EXIT.usage; // `quench` alone: the help went to stderr
        return;
      }
      const message = usageMessage(err);
      process.stderr.write(
        json
          ? `${JSON.stringify({ error: { code: "usage", message } })}\n`
          : `quench: ${message}\n`,
      );
      process.exitCode = EXIT.usage;
      return;
    }
    const failure = describeFailure(err);
    process.stderr.write(
      json ? `${JSON.stringify({ error: failure })}\n` : `quench: ${failure.message}\n`,
    );
    process.exitCode = EXIT.usage;
  },
);
