import { type EIP1193Provider, getAddress, hexToNumber, toHex } from "viem";
import { createSiweMessage } from "viem/siwe";
import type { QuenchClient } from "./client.js";
import { QuenchError } from "./errors.js";
import type { Session } from "./types.js";

export interface SiweOptions {
  /** The domain the message binds to; must be one of the server's SIWE_DOMAINS. Default: the URL's host. */
  domain?: string;
  /** The URI in the message. Default: the client's URL. */
  uri?: string;
  /** Default: 1 for an account; the wallet's current chain for a wallet. */
  chainId?: number;
  statement?: string;
}

/** Something that signs an EIP-191 message: a viem `Account` (`privateKeyToAccount`, …). */
export interface MessageSigner {
  address: `0x${string}`;
  signMessage(args: { message: string }): Promise<`0x${string}`>;
}

/** Signs in with Sign-In with Ethereum as `account` (Node, or any viem local account). */
export function signInWithAccount(
  client: QuenchClient,
  account: MessageSigner,
  options: SiweOptions = {},
): Promise<Session> {
  return signIn(client, account.address, options.chainId ?? 1, options, (message) =>
    account.signMessage({ message }),
  );
}

/**
 * Signs in with a browser wallet (EIP-1193, e.g. `window.ethereum`): asks for
 * its account (`eth_requestAccounts`) and chain (`eth_chainId`), then for a
 * `personal_sign` of the SIWE message. The three requests are the wallet
 * standard itself; viem's wallet client would add about 6 KB (gzipped) to
 * the dashboard for the same three calls.
 */
export async function signInWithWallet(
  client: QuenchClient,
  provider: EIP1193Provider,
  options: SiweOptions = {},
): Promise<Session> {
  let address: `0x${string}` | undefined;
  let chainId: number;
  try {
    const [first] = await provider.request({ method: "eth_requestAccounts" });
    address = first === undefined ? undefined : getAddress(first);
    chainId = options.chainId ?? hexToNumber(await provider.request({ method: "eth_chainId" }));
  } catch (err) {
    throw rejected(err);
  }
  if (address === undefined)
    throw new QuenchError("signature_rejected", "the wallet has no account");
  const account = address;
  return signIn(client, account, chainId, options, (message) =>
    provider.request({ method: "personal_sign", params: [toHex(message), account] }),
  );
}

async function signIn(
  client: QuenchClient,
  address: `0x${string}`,
  chainId: number,
  options: SiweOptions,
  sign: (message: string) => Promise<`0x${string}`>,
): Promise<Session> {
  const { nonce } = await client.nonce();
  const message = createSiweMessage({
    address,
    chainId,
    domain: options.domain ?? new URL(client.url).host,
    nonce,
    uri: options.uri ?? `${client.url}/`,
    version: "1",
    issuedAt: new Date(),
    ...(options.statement === undefined ? {} : { statement: options.statement }),
  });
  let signature: string;
  try {
    signature = await sign(message);
  } catch (err) {
    throw rejected(err);
  }
  return client.signInWithSiwe({ message, signature });
}

function rejected(err: unknown): QuenchError {
  const message = err instanceof Error ? err.message : String(err);
  return new QuenchError(
    "signature_rejected",
    `the wallet did not sign: ${message}`,
    0,
    {},
    {
      cause: err,
    },
  );
}
