/**
 * EIP-4361 messages written line by line, so a test can build what viem's
 * createSiweMessage refuses to write (an IPv6 domain, fields out of order,
 * impossible dates) and check that the server refuses or accepts it.
 */
export interface SiweLines {
  scheme?: string;
  domain: string;
  address: string;
  statement?: string;
  uri: string;
  version: string;
  chainId: string;
  nonce: string;
  issuedAt: string;
  expirationTime?: string;
  notBefore?: string;
  requestId?: string;
  resources?: string[];
}

/** The optional trailing fields, in the EIP's order. */
export const OPTIONAL_FIELDS = [
  ["expirationTime", "Expiration Time: "],
  ["notBefore", "Not Before: "],
  ["requestId", "Request ID: "],
] as const;

/** The message as EIP-4361 lays it out; `order` reorders the optional fields (a forbidden message). */
export function siweText(f: SiweLines, order: readonly (keyof SiweLines)[] = []): string {
  const head = `${f.scheme === undefined ? "" : `${f.scheme}://`}${f.domain} wants you to sign in with your Ethereum account:`;
  const lines = [head, f.address, ""];
  lines.push(...(f.statement === undefined ? [""] : [f.statement, ""]));
  lines.push(
    `URI: ${f.uri}`,
    `Version: ${f.version}`,
    `Chain ID: ${f.chainId}`,
    `Nonce: ${f.nonce}`,
    `Issued At: ${f.issuedAt}`,
  );
  const optional = OPTIONAL_FIELDS.map(([k]) => k as keyof SiweLines);
  const sequence = [...order, ...optional.filter((k) => !order.includes(k))];
  for (const key of sequence) {
    const title = OPTIONAL_FIELDS.find(([k]) => k === key)?.[1];
    const value = f[key];
    if (title !== undefined && typeof value === "string") lines.push(`${title}${value}`);
  }
  if (f.resources !== undefined) {
    lines.push("Resources:", ...f.resources.map((r) => `- ${r}`));
  }
  return lines.join("\n");
}
