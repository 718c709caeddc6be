import { decodeJwt } from "jose";
import type { LocalAccount } from "viem";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { createNonce, purgeExpiredNonces } from "../../src/db/nonces.js";
import { authNonces } from "../../src/db/schema.js";
import { HOST, newWallet, startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { type SiweLines, siweText } from "../helpers/siwe-text.js";

describe.each(DRIVERS)("strict Sign-In with Ethereum on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  const apis: TestApi[] = [];
  const api = async (options: Parameters<typeof startApi>[2] = {}) => {
    const a = await startApi(database, { demo: { kind: "demo" } }, options);
    apis.push(a);
    return a;
  };
  afterEach(async () => {
    for (const a of apis.splice(0)) await a.close();
  });

  async function freshNonce(a: TestApi): Promise<string> {
    const res = await a.call("GET", "/api/v1/auth/nonce");
    return ((await res.json()) as { nonce: string }).nonce;
  }

  /** Fields of a message that is valid now for `wallet` on HOST. */
  function fields(wallet: LocalAccount, nonce: string, domain = HOST): SiweLines {
    return {
      domain,
      address: wallet.address,
      statement: "Sign in to quench",
      uri: `https://${HOST}/`,
      version: "1",
      chainId: "1",
      nonce,
      issuedAt: new Date().toISOString(),
    };
  }

  async function signIn(a: TestApi, wallet: LocalAccount, message: string) {
    const signature = await wallet.signMessage({ message });
    return a.call("POST", "/api/v1/auth/siwe", { body: { message, signature } });
  }

  it("refuses, with a correct signature and a fresh nonce, every message EIP-4361 forbids", async () => {
    const a = await api();
    const wallet = newWallet();
    const past = new Date(Date.now() - 3600_000).toISOString();
    const soon = new Date(Date.now() + 3600_000).toISOString();
    const forbidden: Array<[string, (f: SiweLines) => string]> = [
      [
        "a past expiry after Not Before",
        (f) =>
          siweText({ ...f, expirationTime: past, notBefore: past }, [
            "notBefore",
            "expirationTime",
          ]),
      ],
      [
        "a past expiry after Request ID",
        (f) =>
          siweText({ ...f, expirationTime: past, requestId: "r1" }, [
            "requestId",
            "expirationTime",
          ]),
      ],
      [
        "an expiry that is not RFC 3339",
        (f) => siweText({ ...f, expirationTime: "Wed Oct 05 2011 16:48:00 GMT+0200" }),
      ],
      ["an impossible date", (f) => siweText({ ...f, expirationTime: "2100-02-31T10:00:00Z" })],
      ["Version: 3", (f) => siweText({ ...f, version: "3" })],
      ["a lower-case address", (f) => siweText({ ...f, address: f.address.toLowerCase() })],
      ["a statement with a line break", (f) => siweText({ ...f, statement: "a\nb" })],
      ["a URI that is not RFC 3986", (f) => siweText({ ...f, uri: "https://quench.test/a b" })],
      ["a resource that is not RFC 3986", (f) => siweText({ ...f, resources: ["a b"] })],
      [
        "resources not one per line",
        (f) =>
          siweText({
            ...f,
            expirationTime: soon,
            resources: ["https://a.test/ - https://b.test/"],
          }),
      ],
    ];
    for (const [what, write] of forbidden) {
      const nonce = await freshNonce(a);
      const res = await signIn(a, wallet, write(fields(wallet, nonce)));
      expect(res.status, what).toBe(401);
      expect(await res.json(), what).toMatchObject({
        error: { code: "unauthenticated", reason: "malformed_message" },
      });
    }
    // Nothing above consumed a nonce or issued a session; a valid message still signs in.
    const nonce = await freshNonce(a);
    expect((await signIn(a, wallet, siweText(fields(wallet, nonce)))).status).toBe(200);
  });

  it("the session never outlives the message's Expiration Time", async () => {
    const a = await api();
    const wallet = newWallet();
    const expiry = new Date(Date.now() + 5 * 60_000);
    const res = await signIn(
      a,
      wallet,
      siweText({ ...fields(wallet, await freshNonce(a)), expirationTime: expiry.toISOString() }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as { token: string; expires_at: string };
    expect(new Date(body.expires_at).getTime()).toBe(expiry.getTime());
    expect(decodeJwt(body.token).exp).toBe(Math.floor(expiry.getTime() / 1000));
    // Without an expiry the session lifetime (24 h) applies.
    const open = await signIn(a, wallet, siweText(fields(wallet, await freshNonce(a))));
    const lifetime = new Date(((await open.json()) as { expires_at: string }).expires_at);
    expect(lifetime.getTime()).toBeGreaterThan(Date.now() + 23 * 3600_000);
  });

  it("an expired message, or one not valid yet, is refused by its times", async () => {
    const a = await api();
    const wallet = newWallet();
    const f = fields(wallet, await freshNonce(a));
    const expired = await signIn(
      a,
      wallet,
      siweText({ ...f, expirationTime: new Date(Date.now() - 5 * 60_000).toISOString() }),
    );
    expect(await expired.json()).toMatchObject({ error: { reason: "message_expired" } });
    const early = await signIn(
      a,
      wallet,
      siweText({ ...f, notBefore: new Date(Date.now() + 5 * 60_000).toISOString() }),
    );
    expect(await early.json()).toMatchObject({ error: { reason: "message_not_yet_valid" } });
  });

  it("accepts an IPv6 host as the domain when it is an allowed domain", async () => {
    const a = await api({ siweDomains: ["[::1]:8080"] });
    const wallet = newWallet();
    const res = await signIn(
      a,
      wallet,
      siweText(fields(wallet, await freshNonce(a), "[::1]:8080")),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ address: wallet.address });
    const other = await signIn(
      a,
      wallet,
      siweText(fields(wallet, await freshNonce(a), "[::2]:8080")),
    );
    expect(await other.json()).toMatchObject({ error: { reason: "wrong_domain" } });
  });

  it("expired nonces are purged and live ones kept", async () => {
    const dead = await createNonce(database.db, -1_000);
    const live = await createNonce(database.db, 60_000);
    expect(await purgeExpiredNonces(database.db)).toBeGreaterThanOrEqual(1);
    const left = (await database.db.select().from(authNonces)).map((r) => r.nonce);
    expect(left).toContain(live.nonce);
    expect(left).not.toContain(dead.nonce);
  });
});
