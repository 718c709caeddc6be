import { type Address, getAddress, type Hex, type PublicClient, verifyMessage } from "viem";
import type { Db } from "../../db/connection.js";
import { consumeNonce } from "../../db/nonces.js";
import { ApiError } from "../errors.js";
import { parseSiweMessage, type SiweMessage, SiweSyntaxError } from "./siwe-message.js";
import { unauthenticated } from "./tokens.js";

const CLOCK_SKEW_MS = 60_000;

export interface SiweCheck {
  db: Db;
  /** Domains a message may name (SIWE_DOMAINS, or the host the request reached). */
  domains: string[];
  chainIds: number[];
  /** With RPC_URL: verifies smart-contract wallets (ERC-1271 / ERC-6492) too. */
  publicClient?: PublicClient | undefined;
  now?: Date;
}

/**
 * Verifies a signed EIP-4361 message and returns the checksummed address and
 * the message's expiry (the session must not outlive it). The message is
 * parsed by the EIP's grammar (siwe-message.ts); fields and times are checked first, then the signature (offline for EOAs),
 * and only then is the nonce consumed — atomically, so a replay fails and a
 * forged attempt cannot burn a real user's nonce. Every refusal is a 401 with
 * a stable `reason`.
 */
export async function verifySiwe(
  check: SiweCheck,
  body: { message: string; signature: string },
): Promise<{ address: Address; expirationTime: Date | undefined }> {
  let fields: SiweMessage;
  try {
    fields = parseSiweMessage(body.message);
  } catch (err) {
    if (!(err instanceof SiweSyntaxError)) throw err;
    throw unauthenticated(
      "malformed_message",
      `the message is not an EIP-4361 message (${err.message})`,
    );
  }
  const { address, domain, nonce, chainId } = fields;
  if (!check.domains.includes(domain)) {
    throw unauthenticated("wrong_domain", `the message is for ${domain}, not for this server`);
  }
  if (!check.chainIds.includes(chainId)) {
    // The accepted chains go with the refusal, so a page can ask the wallet to switch.
    throw unauthenticated(
      "wrong_chain",
      `chain ${chainId} is not accepted; accepted: ${check.chainIds.join(", ")}`,
      { accepted_chain_ids: check.chainIds },
    );
  }
  const now = (check.now ?? new Date()).getTime();
  if (fields.expirationTime && fields.expirationTime.getTime() <= now - CLOCK_SKEW_MS) {
    throw unauthenticated("message_expired", "the message has expired");
  }
  if (fields.notBefore && fields.notBefore.getTime() > now + CLOCK_SKEW_MS) {
    throw unauthenticated("message_not_yet_valid", "the message is not valid yet");
  }
  if (fields.issuedAt.getTime() > now + CLOCK_SKEW_MS) {
    throw unauthenticated("message_from_the_future", "the message was issued in the future");
  }
  if (!/^0x[0-9a-fA-F]+$/.test(body.signature)) {
    throw unauthenticated("bad_signature", "the signature is not hex");
  }
  const signed = { address, message: body.message, signature: body.signature as Hex };
  // An EOA's signature is checked offline (about 2 ms). Only one that does not
  // recover to the address goes to RPC_URL, as a smart-contract wallet's
  // (ERC-1271, or ERC-6492 before deployment): viem's own order would ask the
  // node first for every wallet.
  let valid = await verifyMessage(signed).catch(() => false);
  if (!valid && check.publicClient) {
    // viem's verdict is false both when the contract refuses the signature and
    // when the node can't be reached (its call error becomes a refusal). An
    // unreachable node is no verdict: ask it something cheap first.
    const unreachable = (): never => {
      throw new ApiError(
        "unavailable",
        "cannot verify a contract wallet's signature now: RPC_URL did not answer",
      );
    };
    await check.publicClient.getChainId().catch(unreachable);
    valid = await check.publicClient.verifyMessage(signed).catch(unreachable);
  }
  if (!valid) throw unauthenticated("bad_signature", "the signature is not the message address's");
  const outcome = await consumeNonce(check.db, nonce);
  if (outcome === "unknown")
    throw unauthenticated("nonce_invalid", "the nonce is unknown or was already used");
  if (outcome === "expired") throw unauthenticated("nonce_expired", "the nonce has expired");
  return { address: getAddress(address), expirationTime: fields.expirationTime };
}
