/**
 * Where a webhook may point (SPEC.md section 3, Webhooks): `https` (plain
 * `http` only where allowed), and no private, loopback, link-local or
 * otherwise non-public address unless allowed. Checked when a webhook is
 * registered and again on every delivery, at connect time, against the
 * addresses the name resolves to then: DNS can change after registration.
 */
import { type LookupAddress, type LookupOptions, lookup } from "node:dns";
import { lookup as lookupAsync } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import type { WebhookConfig } from "../config.js";

export type UrlRules = Pick<WebhookConfig, "allowHttp" | "allowPrivate">;

/** A URL or address a webhook may not use; `message` says why, for the registering caller. */
export class UnsafeWebhookUrl extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafeWebhookUrl";
  }
}

/** Only ordinary public unicast addresses (IPv4-mapped IPv6 judged as the IPv4 it maps). */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  return ipaddr.process(address).range() === "unicast";
}

function refuseAddress(address: string, rules: UrlRules): void {
  if (!rules.allowPrivate && !isPublicAddress(address)) {
    throw new UnsafeWebhookUrl(`resolves to ${address}, a private or reserved address`);
  }
}

/** The URL's scheme, credentials and literal address; no lookup. */
export function checkUrlShape(raw: string, rules: UrlRules): URL {
  if (!URL.canParse(raw)) throw new UnsafeWebhookUrl("is not a URL");
  const url = new URL(raw);
  if (url.protocol !== "https:" && !(rules.allowHttp && url.protocol === "http:")) {
    throw new UnsafeWebhookUrl(rules.allowHttp ? "must be http or https" : "must be https");
  }
  if (url.username !== "" || url.password !== "") {
    throw new UnsafeWebhookUrl("must not carry credentials");
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) !== 0) refuseAddress(host, rules);
  return url;
}

/** The whole check at registration: the shape, then every address the name resolves to now. */
export async function checkWebhookUrl(raw: string, rules: UrlRules): Promise<URL> {
  const url = checkUrlShape(raw, rules);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) !== 0 || rules.allowPrivate) return url;
  const addresses = await lookupAsync(host, { all: true }).catch(() => {
    throw new UnsafeWebhookUrl(`host ${host} does not resolve`);
  });
  for (const { address } of addresses) refuseAddress(address, rules);
  return url;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for the delivery agent's sockets: resolves as usual, then
 * refuses the connection if any address is not allowed, so a name that
 * now points inside the network is never connected to.
 */
export function guardedLookup(rules: UrlRules) {
  return function webhookLookup(
    hostname: string,
    options: LookupOptions,
    callback: LookupCallback,
  ) {
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      try {
        for (const { address } of addresses) refuseAddress(address, rules);
      } catch (refused) {
        return callback(refused as NodeJS.ErrnoException, []);
      }
      const first = addresses[0];
      if (options.all) return callback(null, addresses);
      if (first === undefined) return callback(new Error(`${hostname} has no address`), []);
      return callback(null, first.address, first.family);
    });
  };
}
