import { createClient, type QuenchClient } from "../client/client.js";
import { UsageError } from "./errors.js";

export const DEFAULT_URL = "http://127.0.0.1:8080";

/**
 * A client for QUENCH_URL, authenticated with QUENCH_TOKEN (a service or
 * session token) or, failing that, by signing in with SIWE as the wallet of
 * QUENCH_PRIVATE_KEY. The key never leaves this process: only the signature
 * is sent.
 */
export async function connect(env: NodeJS.ProcessEnv, url?: string): Promise<QuenchClient> {
  const client = createClient({ url: url ?? env.QUENCH_URL ?? DEFAULT_URL });
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
  // viem loads only for wallet sign-in: it is most of the CLI's start-up time.
  const [{ privateKeyToAccount }, { signInWithAccount }] = await Promise.all([
    import("viem/accounts"),
    import("../client/siwe.js"),
  ]);
  await signInWithAccount(client, privateKeyToAccount(hex as `0x${string}`));
  return client;
}
