import { html, render } from "lit-html";
import { repeat } from "lit-html/directives/repeat.js";
import type { EIP1193Provider } from "viem";
import { createClient } from "../../client/client.js";
import { isQuenchError } from "../../client/errors.js";
import { outputText, stopDelayMs } from "../../client/job-facts.js";
import type { Job, Session, StreamEvent } from "../../client/types.js";
import { isTerminalJobStatus } from "../../vocabulary.js";
import { byId, confirmDialog, h, toast } from "./dom.js";
import { jobCard } from "./job-card.js";
import { clearSession, loadSession, saveSession } from "./session.js";
import { SignInProblem, signInWithBrowserWallet, signInWithToken } from "./signin.js";

declare global {
  interface Window {
    ethereum?: EIP1193Provider;
  }
}

// Browsers open at most 6 HTTP/1.1 connections per origin: live streams take
// a few, the rest stay free for cancels and polls. Jobs beyond are polled.
const MAX_STREAMS = 3;
const POLL_MS = 3_000;
const LIST_LIMIT = 25;

const client = createClient({ url: location.origin });
const jobs = new Map<string, Job>();
/** Each execution's streamed text, in the pieces it arrived in. */
const chunks = new Map<string, string[]>();
const reports = new Map<string, unknown>();
const streams = new Map<string, AbortController>();
const cancelling = new Set<string>();
const resuming = new Set<string>();
let pollTimer: ReturnType<typeof setTimeout> | undefined;
let expiryTimer: ReturnType<typeof setTimeout> | undefined;
let drawPending = false;
/** The last poll could not reach the server (told once, until it can). */
let offline = false;

/** Renders the list now. lit-html touches only what changed: focus, scroll and selections stay. */
function drawNow() {
  drawPending = false;
  const list = byId("jobs");
  const sorted = [...jobs.values()].sort((a, b) =>
    (b.created_at ?? "").localeCompare(a.created_at ?? ""),
  );
  // Output the server holds (a finished or polled job) continues what streamed.
  for (const job of sorted) {
    for (const e of job.executions) {
      const text = outputText(e.output);
      if (text.length > (chunks.get(e.id) ?? []).reduce((n, c) => n + c.length, 0)) {
        textChunks(e.id, text);
      }
    }
  }
  // Output boxes scrolled to their end follow new text; one scrolled up stays put.
  const now = Date.now();
  const following = [...list.querySelectorAll<HTMLElement>("pre.output")].filter(
    (pre) => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 2,
  );
  render(
    html`${repeat(
      sorted,
      (job) => job.id,
      (job) =>
        jobCard(job, {
          chunks,
          reports,
          cancelling: cancelling.has(job.id),
          resuming: resuming.has(job.id),
          offline,
          now,
        }),
    )}`,
    list,
  );
  for (const pre of following) pre.scrollTop = pre.scrollHeight;
  byId("empty").hidden = sorted.length > 0;
}

/** At most one render per frame, however many events arrive. */
function draw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    if (drawPending) drawNow();
  });
}

/**
 * Keeps an execution's streamed text as the pieces it arrived in: each new
 * piece becomes a new text node after the old ones, so a selection in the
 * text already shown survives. Text that does not continue what was shown
 * (a retry started over) replaces it.
 */
function textChunks(executionId: string, full: string) {
  const pieces = chunks.get(executionId) ?? [];
  const shown = pieces.join("");
  if (full === shown) return;
  chunks.set(executionId, full.startsWith(shown) ? [...pieces, full.slice(shown.length)] : [full]);
}

function showSignedIn(address: string | undefined) {
  byId("signin").hidden = address !== undefined;
  byId("workspace").hidden = address === undefined;
  const account = byId("account");
  if (address === undefined) {
    account.replaceChildren();
    return;
  }
  const signOutButton = h("button", { type: "button", id: "signout" }, "Sign out");
  signOutButton.addEventListener("click", () => signOut());
  account.replaceChildren(
    h("span", { title: address }, `${address.slice(0, 6)}…${address.slice(-4)}`),
    signOutButton,
  );
}

function signOut(message?: string) {
  clearTimeout(pollTimer);
  clearTimeout(expiryTimer);
  for (const controller of streams.values()) controller.abort();
  streams.clear();
  jobs.clear();
  chunks.clear();
  reports.clear();
  cancelling.clear();
  clearSession();
  client.setToken(undefined);
  showSignedIn(undefined);
  draw();
  if (message) toast(message, "error");
}

/**
 * The server can't be reached: a lasting banner (not a toast per retry), and
 * Cancel disabled until the next poll gets through.
 */
function setOffline(value: boolean) {
  if (offline === value) return;
  offline = value;
  byId("offline").hidden = !value;
  draw();
}

/** Any call's failure: a lapsed session signs out; the rest become a toast. */
function failed(err: unknown, what: string) {
  if (isQuenchError(err, "unauthenticated")) return signOut("Your session ended: sign in again.");
  if (isQuenchError(err, "aborted")) return;
  if (isQuenchError(err, "network_error")) {
    setOffline(true);
    return toast(`${what}: quench can't be reached. Try again once it is back.`, "error");
  }
  toast(`${what}: ${err instanceof Error ? err.message : String(err)}`, "error");
}

function apply(event: StreamEvent) {
  if (event.event === "job") jobs.set(event.data.id, event.data);
  else if (event.event === "execution") {
    for (const job of jobs.values()) {
      const i = job.executions.findIndex((e) => e.id === event.data.id);
      if (i >= 0) job.executions[i] = event.data;
    }
  } else if (event.event === "progress") {
    textChunks(event.data.execution_id, outputText(event.data.output));
    if (event.data.progress !== null) reports.set(event.data.execution_id, event.data.progress);
  }
  draw();
}

/**
 * Follows one job's stream. A stream that ended with its job frees a slot at
 * once; one that failed (server restarting, network gone) is left to the next
 * poll, so an outage costs one attempt per poll, not a loop.
 */
async function follow(id: string) {
  const controller = new AbortController();
  streams.set(id, controller);
  let ended = false;
  try {
    for await (const event of client.stream(id, { signal: controller.signal })) {
      apply(event);
      if (event.event === "end") ended = true;
    }
  } catch (err) {
    // The poll reports an unreachable server, once.
    if (!isQuenchError(err, "network_error")) failed(err, "Live updates stopped");
  } finally {
    streams.delete(id);
    if (ended) startStreams();
  }
}

function startStreams() {
  for (const job of jobs.values()) {
    if (streams.size >= MAX_STREAMS) return;
    if (!isTerminalJobStatus(job.status) && !streams.has(job.id)) void follow(job.id);
  }
}

async function refresh() {
  clearTimeout(pollTimer);
  try {
    const page = await client.jobs({ limit: LIST_LIMIT });
    for (const job of page.jobs) if (!streams.has(job.id)) jobs.set(job.id, job);
    draw();
    startStreams();
    if (offline) toast("Connected to quench again.");
    setOffline(false);
  } catch (err) {
    if (!isQuenchError(err, "network_error")) failed(err, "Could not load your jobs");
    else setOffline(true);
  }
  if (client.token !== undefined) pollTimer = setTimeout(refresh, POLL_MS);
}

function startSession(session: { token: string; address: string; expires_at: string }) {
  client.setToken(session.token);
  showSignedIn(session.address);
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(
    () => signOut("Your session expired: sign in again."),
    Math.min(Date.parse(session.expires_at) - Date.now(), 2 ** 31 - 1),
  );
  void refresh();
}

/** Either way in: keep the session (this tab only) and start, or say plainly why not. */
async function enter(session: () => Promise<Session>): Promise<boolean> {
  try {
    const started = await session();
    saveSession(started);
    startSession(started);
    toast(`Signed in as ${started.address}`);
    return true;
  } catch (err) {
    if (err instanceof SignInProblem) toast(err.message, "error");
    else failed(err, "Sign-in failed");
    return false;
  }
}

async function signIn() {
  const wallet = window.ethereum;
  if (wallet === undefined) {
    toast("No browser wallet found: install one (MetaMask, Rabby, …) and reload.", "error");
    return;
  }
  const button = byId<HTMLButtonElement>("signin-button");
  button.disabled = true;
  button.textContent = "Check your wallet…";
  await enter(() => signInWithBrowserWallet(client, wallet));
  button.disabled = false;
  button.textContent = "Sign in with wallet";
}

async function signInByToken(event: SubmitEvent) {
  event.preventDefault();
  const input = byId<HTMLInputElement>("token");
  const button = byId<HTMLButtonElement>("token-button");
  button.disabled = true;
  if (await enter(() => signInWithToken(client, input.value))) input.value = "";
  button.disabled = false;
}

async function submit(event: SubmitEvent) {
  event.preventDefault();
  const button = byId<HTMLButtonElement>("submit-button");
  const prompt = byId<HTMLTextAreaElement>("prompt").value.trim() || "hello";
  button.disabled = true;
  try {
    const job = await client.submit({
      executions: [
        {
          key: "demo",
          provider: "demo",
          model: "demo",
          input: { messages: [{ role: "user", content: prompt }] },
        },
      ],
      // The card shows it: the job object carries metadata, not inputs.
      metadata: { source: "dashboard", prompt },
    });
    jobs.set(job.id, job);
    draw();
    toast(`Submitted job ${job.id.slice(0, 8)}`);
    startStreams();
  } catch (err) {
    failed(err, "Could not submit");
  } finally {
    button.disabled = false;
  }
}

async function cancel(id: string) {
  if (cancelling.has(id)) return;
  const confirmed = await confirmDialog(
    `Cancel job ${id.slice(0, 8)}? Its GPU work stops at once; output received so far is kept.`,
  );
  if (!confirmed) return;
  cancelling.add(id);
  // Shown at once, not on the next frame: a cancel often completes within one.
  drawNow();
  try {
    const result = await client.cancel(id, { reason: "cancelled from the dashboard" });
    const ms = stopDelayMs(result.cancelled_at, result.stopped_at);
    const stop =
      ms !== undefined
        ? `work stopped ${ms} ms after the cancel`
        : result.previous_status === "queued"
          ? "it had not started"
          : "waiting for the runner to confirm the stop";
    toast(`Cancelled job ${id.slice(0, 8)}: ${stop}.`);
  } catch (err) {
    failed(err, `Could not cancel job ${id.slice(0, 8)}`);
  } finally {
    cancelling.delete(id);
    // Unreachable, the next poll brings the job back; no second error for the same cause.
    if (!offline) {
      try {
        jobs.set(id, await client.job(id));
      } catch (err) {
        failed(err, "Could not reload the job");
      }
    }
    draw();
  }
}

async function resume(id: string) {
  if (resuming.has(id)) return;
  resuming.add(id);
  draw();
  try {
    const job = await client.resume(id);
    jobs.set(job.id, job);
    jobs.set(id, await client.job(id));
    const kept = job.executions.filter((e) => e.resumed).length;
    toast(
      `Resumed job ${id.slice(0, 8)} as ${job.id.slice(0, 8)}: ${kept} of ${job.executions.length} executions kept.`,
    );
    startStreams();
  } catch (err) {
    failed(err, `Could not resume job ${id.slice(0, 8)}`);
  } finally {
    resuming.delete(id);
    draw();
  }
}

function main() {
  byId("signin-button").addEventListener("click", () => void signIn());
  byId<HTMLFormElement>("submit-form").addEventListener("submit", (e) => void submit(e));
  byId<HTMLFormElement>("token-form").addEventListener("submit", (e) => void signInByToken(e));
  byId("jobs").addEventListener("click", (e) => {
    const target = (e.target as HTMLElement).closest<HTMLElement>("[data-action]");
    const id = target?.dataset.jobId;
    if (id === undefined) return;
    if (target?.dataset.action === "cancel") void cancel(id);
    else if (target?.dataset.action === "resume") void resume(id);
  });
  if (window.ethereum === undefined) {
    byId("signin-note").textContent = "No browser wallet detected: install one to sign in.";
  }
  const session = loadSession();
  if (session === undefined) showSignedIn(undefined);
  else startSession(session);
  // The elapsed times move on each second while a job waits or runs (a render
  // changes only those text nodes: focus and selections stay).
  setInterval(() => {
    if ([...jobs.values()].some((j) => !isTerminalJobStatus(j.status))) draw();
  }, 1_000);
}

main();
