import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { createNonce } from "../../src/db/nonces.js";
import { startFakeServer } from "../fakes/fake-server.js";
import {
  AUDIENCE,
  ISSUER,
  newWallet,
  siweMessage,
  startApi,
  type TestApi,
} from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe.each(DRIVERS)("authentication on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  const apis: TestApi[] = [];
  const api = async (options = {}) => {
    const a = await startApi(database, { demo: { kind: "demo" } }, options);
    apis.push(a);
    return a;
  };
  afterEach(async () => {
    for (const a of apis.splice(0)) await a.close();
  });

  /** Expects a 401 in SPEC's error shape with this `reason`. */
  async function refused(res: Response, reason: string) {
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    expect(await res.json()).toMatchObject({ error: { code: "unauthenticated", reason } });
  }

  it("a wallet signs in with SIWE and its session reaches its jobs", async () => {
    const a = await api();
    const wallet = newWallet();
    const nonceRes = await a.call("GET", "/api/v1/auth/nonce");
    const { nonce, expires_at } = (await nonceRes.json()) as { nonce: string; expires_at: string };
    expect(new Date(expires_at).getTime()).toBeGreaterThan(Date.now() + 9 * 60_000);
    const res = await a.call("POST", "/api/v1/auth/siwe", {
      body: await siweMessage(wallet, nonce),
    });
    expect(res.status).toBe(200);
    const session = (await res.json()) as { token: string; address: string; expires_at: string };
    expect(session.address).toBe(wallet.address);
    const jobs = await a.call("GET", "/api/v1/jobs", { token: session.token });
    expect(jobs.status).toBe(200);
    expect(await jobs.json()).toEqual({ jobs: [], next_cursor: null });
  });

  it("a replayed nonce is refused", async () => {
    const a = await api();
    const wallet = newWallet();
    const { nonce } = (await (await a.call("GET", "/api/v1/auth/nonce")).json()) as {
      nonce: string;
    };
    const signed = await siweMessage(wallet, nonce);
    expect((await a.call("POST", "/api/v1/auth/siwe", { body: signed })).status).toBe(200);
    await refused(await a.call("POST", "/api/v1/auth/siwe", { body: signed }), "nonce_invalid");
  });

  it("an expired nonce is refused", async () => {
    const a = await api();
    const { nonce } = await createNonce(database.db, -1_000);
    await refused(
      await a.call("POST", "/api/v1/auth/siwe", { body: await siweMessage(newWallet(), nonce) }),
      "nonce_expired",
    );
  });

  it("a message for another domain is refused, and its nonce is not burnt", async () => {
    const a = await api();
    const wallet = newWallet();
    const { nonce } = (await (await a.call("GET", "/api/v1/auth/nonce")).json()) as {
      nonce: string;
    };
    const phished = await siweMessage(wallet, nonce, { domain: "evil.test" });
    await refused(await a.call("POST", "/api/v1/auth/siwe", { body: phished }), "wrong_domain");
    expect(
      (await a.call("POST", "/api/v1/auth/siwe", { body: await siweMessage(wallet, nonce) }))
        .status,
    ).toBe(200);
  });

  it("a signature by another key is refused", async () => {
    const a = await api();
    const { nonce } = (await (await a.call("GET", "/api/v1/auth/nonce")).json()) as {
      nonce: string;
    };
    const { message } = await siweMessage(newWallet(), nonce);
    const signature = await newWallet().signMessage({ message });
    await refused(
      await a.call("POST", "/api/v1/auth/siwe", { body: { message, signature } }),
      "bad_signature",
    );
  });

  it("a message for a chain not accepted, or already expired, is refused", async () => {
    const a = await api();
    const wallet = newWallet();
    const { nonce } = (await (await a.call("GET", "/api/v1/auth/nonce")).json()) as {
      nonce: string;
    };
    await refused(
      await a.call("POST", "/api/v1/auth/siwe", {
        body: await siweMessage(wallet, nonce, { chainId: 137 }),
      }),
      "wrong_chain",
    );
    const stale = await siweMessage(wallet, nonce, {
      expirationTime: new Date(Date.now() - 5 * 60_000),
    });
    await refused(await a.call("POST", "/api/v1/auth/siwe", { body: stale }), "message_expired");
  });

  it("an expired session is refused", async () => {
    const a = await api({ sessionTtlMs: -120_000 });
    const token = await a.signIn(newWallet());
    await refused(await a.call("GET", "/api/v1/jobs", { token }), "token_expired");
  });

  it("no token, a malformed header and a non-JWT are refused", async () => {
    const a = await api();
    await refused(await a.call("GET", "/api/v1/jobs"), "missing_token");
    await refused(
      await a.call("GET", "/api/v1/jobs", { headers: { authorization: "Basic abc" } }),
      "malformed_authorization",
    );
    await refused(await a.call("GET", "/api/v1/jobs", { token: "not-a-jwt" }), "malformed_token");
  });

  it("a token with alg none is refused", async () => {
    const a = await api();
    const now = Math.floor(Date.now() / 1000);
    const token = `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "x", iss: ISSUER, aud: AUDIENCE, exp: now + 600, scope: "jobs:admin" })}.`;
    await refused(await a.call("GET", "/api/v1/jobs", { token }), "algorithm_not_allowed");
  });

  it("a service token with the wrong audience, or without exp, is refused", async () => {
    const a = await api();
    await refused(
      await a.call("GET", "/api/v1/jobs", {
        token: await a.serviceToken("svc", ["jobs:read"], { audience: "someone-else" }),
      }),
      "claim_invalid",
    );
    const noExp = await new SignJWT({ scope: "jobs:read" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("svc")
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .sign(new TextEncoder().encode(a.serviceSecret));
    await refused(await a.call("GET", "/api/v1/jobs", { token: noExp }), "claim_invalid");
    await refused(
      await a.call("GET", "/api/v1/jobs", {
        token: await a.serviceToken("svc", ["jobs:read"], { expiresInS: -120 }),
      }),
      "token_expired",
    );
  });

  it("with a JWKS, an asymmetric token is accepted and an HS256 token is refused", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    const jwks = await startFakeServer((_req, res) => {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ keys: [jwk] }));
    });
    try {
      const a = await api({ jwksUrl: `${jwks.url}/.well-known/jwks.json` });
      const claims = new SignJWT({ scope: "jobs:read" })
        .setSubject("billing")
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime("10m");
      const good = await claims.setProtectedHeader({ alg: "ES256", kid: "k1" }).sign(privateKey);
      expect((await a.call("GET", "/api/v1/jobs", { token: good })).status).toBe(200);
      const hs = await new SignJWT({ scope: "jobs:read" })
        .setProtectedHeader({ alg: "HS256", kid: "k1" })
        .setSubject("billing")
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime("10m")
        .sign(new TextEncoder().encode("x".repeat(32)));
      await refused(await a.call("GET", "/api/v1/jobs", { token: hs }), "algorithm_not_allowed");
    } finally {
      await jwks.close();
    }
  });
});
