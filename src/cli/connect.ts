import { createClient, type QuenchClient } from "../client/client.js";
import { DEFAULT_URL } from "./defaults.js";
import { UsageError } from "./errors.js";
import { sessionCache } from "./session-cache.js";

/**
 * Credentials for one run of the CLI: QUENCH_TOKEN (a service or session
 * token) or, failing that, the wallet of QUENCH_PRIVATE_KEY, signed in with
 * SIWE (the key never leaves this process: only the signature is sent). A
 * wallet session is reused from the session cache while it is valid.
 * `staleSessionRefused` tells the caller that the server refused a cached
 * session before accepting any request: the command did nothing, and can be
 * run again after a fresh sign-in.
 */
export function credentials(env: NodeJS.ProcessEnv, options: { fresh?: boolean } = {}) {
  let usedCachedSession = false;
  let accepted = false;
  const watchedFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (res.status !== 401) accepted = true;
    return res;
  };
  return {
    get staleSessionRefused() {
      return usedCachedSession && !accepted;
    },
    async connect(url?: string): Promise<QuenchClient> {
      const client = createClient({
        url: url ?? env.QUENCH_URL ?? DEFAULT_URL,
        fetch: watchedFetch,
      });
      const token = env.QUENCH_TOKEN?.trim();
      if (token) {
        client.setToken(token);
        return client;
      }
      const key = env.QUENCH_PRIVATE_KEY?.trim();
      if (!key) {
        throw new UsageError(
          "not signed in: set QUENCH_TOKEN (`quench token` mints one in development) or QUENCH_PRIVATE_KEY",
        );
      }
      const hex = key.startsWith("0x") ? key : `0x${key}`;
      if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
        throw new UsageError("QUENCH_PRIVATE_KEY must be a private key of 64 hex digits");
      }
      const cache = sessionCache(env, client.url, hex);
      if (options.fresh) await cache.forget();
      else {
        const cached = await cache.get();
        if (cached !== undefined) {
          usedCachedSession = true;
          client.setToken(cached);
          return client;
        }
      }
      // viem loads only for wallet sign-in: it is most of the CLI's start-up time.
      const [{ privateKeyToAccount }, { signInWithAccount }] = await Promise.all([
        import("viem/accounts"),
        import("../client/siwe.js"),
      ]);
      await cache.put(await signInWithAccount(client, privateKeyToAccount(hex as `0x${string}`)));
      return client;
    },
  };
}

export type Credentials = ReturnType<typeof credentials>;
