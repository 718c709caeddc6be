import { ParsedMessage } from "@spruceid/siwe-parser";

/** An EIP-4361 message that passed the EIP's grammar, its times as real instants. */
export interface SiweMessage {
  scheme: string | undefined;
  domain: string;
  address: `0x${string}`;
  statement: string | undefined;
  uri: string;
  version: "1";
  chainId: number;
  nonce: string;
  issuedAt: Date;
  expirationTime: Date | undefined;
  notBefore: Date | undefined;
  requestId: string | undefined;
  resources: string[] | undefined;
}

/** The message is not what EIP-4361's ABNF allows; `message` says where, for logs and the 401. */
export class SiweSyntaxError extends Error {
  override name = "SiweSyntaxError";
}

/**
 * Parses a message strictly by EIP-4361's ABNF, with the reference
 * implementation's grammar-built parser (@spruceid/siwe-parser, apg-js): the
 * fields in the EIP's order, `Version: 1`, an EIP-55 address, RFC 3986 URIs,
 * a one-line statement, one resource per line, RFC 3339 times that are real
 * calendar dates. Nothing is guessed or skipped: anything else throws.
 *
 * Risk this guards: a `Date` that is Invalid compares false with everything,
 * so an unparsable expiry would read as "not expired". Every time here is a
 * finite instant, or the message is refused.
 */
export function parseSiweMessage(message: string): SiweMessage {
  let parsed: ParsedMessage;
  try {
    parsed = new ParsedMessage(message);
  } catch (err) {
    const why = err instanceof Error ? (err.message.split("\n")[0] ?? "") : "";
    throw new SiweSyntaxError(why.startsWith("line ") ? why : "not an EIP-4361 message");
  }
  if (parsed.version !== "1") throw new SiweSyntaxError(`version ${parsed.version} is not 1`);
  if (!Number.isSafeInteger(parsed.chainId)) {
    throw new SiweSyntaxError("the chain id is not a safe integer");
  }
  return {
    scheme: parsed.scheme,
    domain: parsed.domain,
    address: parsed.address as `0x${string}`,
    statement: parsed.statement === "" ? undefined : parsed.statement,
    uri: parsed.uri,
    version: "1",
    chainId: parsed.chainId,
    nonce: parsed.nonce,
    issuedAt: instant(parsed.issuedAt, "Issued At"),
    expirationTime: optionalInstant(parsed.expirationTime, "Expiration Time"),
    notBefore: optionalInstant(parsed.notBefore, "Not Before"),
    requestId: parsed.requestId,
    resources: parsed.resources,
  };
}

/**
 * An RFC 3339 `date-time` the grammar accepted, as an instant. The parser has
 * already refused impossible calendar dates (2100-02-31); a time JavaScript
 * cannot represent (a leap second, `…:60`) is refused here rather than rolled over.
 */
function instant(text: string, field: string): Date {
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) throw new SiweSyntaxError(`${field} is not a representable time`);
  return new Date(ms);
}

function optionalInstant(text: string | undefined, field: string): Date | undefined {
  return text === undefined ? undefined : instant(text, field);
}
