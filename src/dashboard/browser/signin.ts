import type { EIP1193Provider } from "viem";
import type { QuenchClient } from "../../client/client.js";
import { isQuenchError } from "../../client/errors.js";
import { signInWithWallet } from "../../client/siwe.js";
import type { Session } from "../../client/types.js";

const STATEMENT = "Sign in to quench to run and cancel jobs.";

/** Why sign-in did not happen, in words for the person at the wallet (never a library's raw text). */
export class SignInProblem extends Error {
  override readonly name = "SignInProblem";
}

/**
 * Sign-in with the browser wallet. A wallet on a chain the server does not
 * accept (401 `wrong_chain`, which names the accepted chains) is asked to
 * switch (EIP-3326 `wallet_switchEthereumChain`) to the first of them, and
 * sign-in is tried once more. A declined signature or switch is said plainly.
 */
export async function signInWithBrowserWallet(
  client: QuenchClient,
  wallet: EIP1193Provider,
): Promise<Session> {
  try {
    return await signInWithWallet(client, wallet, { statement: STATEMENT });
  } catch (err) {
    if (isQuenchError(err, "signature_rejected")) {
      throw new SignInProblem("You declined the request in your wallet: not signed in.");
    }
    const accepted = acceptedChains(err);
    if (accepted === undefined) throw err;
    const target = accepted[0] as number;
    try {
      await wallet.request({
        method: "wallet_switchEthereumChain",
        params: [{ chainId: `0x${target.toString(16)}` }],
      });
    } catch {
      throw new SignInProblem(
        `Your wallet is on a chain quench does not accept. Switch it to chain ${accepted.join(" or ")} and sign in again.`,
      );
    }
    try {
      return await signInWithWallet(client, wallet, { statement: STATEMENT });
    } catch (again) {
      if (isQuenchError(again, "signature_rejected")) {
        throw new SignInProblem("You declined the request in your wallet: not signed in.");
      }
      throw again;
    }
  }
}

/** The accepted chain ids of a `wrong_chain` refusal, else undefined. */
function acceptedChains(err: unknown): number[] | undefined {
  if (!isQuenchError(err, "unauthenticated") || err.extra.reason !== "wrong_chain")
    return undefined;
  const ids = err.extra.accepted_chain_ids;
  return Array.isArray(ids) && ids.length > 0 && ids.every((n) => typeof n === "number")
    ? ids
    : undefined;
}

/**
 * Sign-in for people without a wallet extension: a token pasted into the
 * page (a service token from `quench token`, or a session token), checked
 * against the server before it is kept.
 */
export async function signInWithToken(client: QuenchClient, token: string): Promise<Session> {
  const claims = jwtClaims(token);
  if (claims === undefined)
    throw new SignInProblem("That is not a quench token (a JWT: three parts separated by dots).");
  client.setToken(token);
  try {
    await client.jobs({ limit: 1 });
  } catch (err) {
    client.setToken(undefined);
    if (isQuenchError(err, "unauthenticated"))
      throw new SignInProblem(`quench refused that token: ${err.message}.`);
    throw err;
  }
  const exp = typeof claims.exp === "number" ? claims.exp * 1000 : Date.now() + 3_600_000;
  const who =
    typeof claims.address === "string"
      ? claims.address
      : typeof claims.sub === "string"
        ? claims.sub
        : "token";
  return { token, address: who as Session["address"], expires_at: new Date(exp).toISOString() };
}

/** The payload of a JWT, unverified (the server verifies it); undefined if it is not one. */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const value: unknown = JSON.parse(json);
    return typeof value === "object" && value !== null
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
