import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Session } from "../client/types.js";

/** Sessions closer than this to their expiry are not reused. */
const MARGIN_MS = 60_000;

type Entries = Record<string, { token: string; expires_at: string }>;

/**
 * Wallet sessions the CLI signed in for, reused until shortly before they
 * expire, so a script running `quench` in a loop signs in once, not once per
 * command (and stays clear of the sign-in rate limit). The file holds session
 * tokens, never keys, under a hash of server and key, with mode 0600.
 * `QUENCH_SESSION_CACHE` names another file, or `off` turns it off.
 */
export function sessionCache(env: NodeJS.ProcessEnv, url: string, privateKey: string) {
  const setting = env.QUENCH_SESSION_CACHE?.trim();
  const base = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, ".cache") : undefined);
  const file =
    setting === "off"
      ? undefined
      : setting || (base === undefined ? undefined : join(base, "quench", "sessions.json"));
  const id = createHash("sha256").update(`${url}\n${privateKey.toLowerCase()}`).digest("hex");

  const read = async (): Promise<Entries> => {
    if (file === undefined) return {};
    try {
      return JSON.parse(await readFile(file, "utf8")) as Entries;
    } catch {
      return {}; // none yet, or unreadable: sign in again
    }
  };
  const write = async (entries: Entries) => {
    if (file === undefined) return;
    const now = Date.now();
    const live = Object.fromEntries(
      Object.entries(entries).filter(([, s]) => Date.parse(s.expires_at) > now),
    );
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(live)}\n`, { mode: 0o600 });
    await rename(tmp, file); // whole or not at all, even with commands running side by side
  };

  return {
    async get(): Promise<string | undefined> {
      const entry = (await read())[id];
      if (entry === undefined || Date.parse(entry.expires_at) - MARGIN_MS <= Date.now())
        return undefined;
      return entry.token;
    },
    async put(session: Session): Promise<void> {
      await write({
        ...(await read()),
        [id]: { token: session.token, expires_at: session.expires_at },
      }).catch(
        () => {}, // a cache that can't be written only costs the next command a sign-in
      );
    },
    async forget(): Promise<void> {
      const entries = await read();
      if (!(id in entries)) return;
      delete entries[id];
      await write(entries).catch(() => {});
    },
  };
}
