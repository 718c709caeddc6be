import { readdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Signals every process of the group led by `pgid` (the child was spawned
 * `detached`, so its pid is the group id and grandchildren inherit it).
 * Returns false if no process of the group exists any more.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

/** A process of a group as /proc shows it (Linux). */
interface Member {
  pid: number;
  /** The state letter: `Z` a zombie, `X` dead. */
  state: string;
}

/** Every process of the group, zombies included, from /proc; undefined where /proc cannot be read. */
async function members(pgid: number): Promise<Member[] | undefined> {
  if (process.platform !== "linux") return undefined;
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return undefined;
  }
  const found: Member[] = [];
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid) found.push({ pid: Number(entry), state: fields[0] ?? "" });
  }
  return found;
}

/**
 * Whether any process of the group is still alive. Zombies do not count: an
 * orphaned grandchild that has died waits to be reaped by PID 1, which in
 * some containers never happens, and `kill(-pgid, 0)` still finds it. On
 * Linux this reads /proc; elsewhere it falls back to `kill(-pgid, 0)`.
 */
export async function groupAlive(pgid: number): Promise<boolean> {
  const found = await members(pgid);
  if (found === undefined) return signalGroup(pgid, 0);
  return found.some((m) => m.state !== "Z" && m.state !== "X");
}

/** The pids of the group now (the leader's alone where /proc cannot be read). */
export async function groupPids(pgid: number): Promise<number[]> {
  return (await members(pgid))?.map((m) => m.pid) ?? [pgid];
}

/** Polls until the group is gone or `ms` passes; true if it is gone. */
export async function waitGroupGone(pgid: number, ms: number, pollMs = 20): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (await groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await sleep(pollMs);
  }
  return true;
}
