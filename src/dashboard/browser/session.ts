import type { Session } from "../../client/types.js";

const KEY = "quench.session";

/**
 * The wallet session lives in sessionStorage: it ends with the tab, and no
 * other origin can read it. An expired one is dropped on load.
 */
export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (raw === null) return undefined;
    const session = JSON.parse(raw) as Session;
    if (Date.parse(session.expires_at) > Date.now() + 5_000) return session;
  } catch {
    // Unreadable: treated as signed out.
  }
  sessionStorage.removeItem(KEY);
  return undefined;
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}
