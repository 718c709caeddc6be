import { Agent } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { createAuthenticator, signServiceToken } from "../../src/api/auth/tokens.js";
import { ApiError } from "../../src/api/errors.js";

const SECRET = "v".repeat(64);
const ISSUER = "quench-dev";
const AUDIENCE = "quench";

/** The 401 reason `authenticate` refused with. */
async function reason(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return (err as ApiError).extra.reason;
  }
  throw new Error("expected a refusal");
}

describe("tokens verified once and remembered", () => {
  const agent = new Agent();
  afterAll(() => agent.close());
  let clock = Date.now();
  const auth = createAuthenticator({
    sessionSecret: "s".repeat(64),
    service: { secret: SECRET, jwksUrl: undefined, issuer: ISSUER, audience: AUDIENCE },
    agent,
    now: () => clock,
  });
  const bearer = (token: string) => `Bearer ${token}`;
  /** A service token for `svc`, as a backend service would send it. */
  const serviceToken = (expiresInS: number, secret = SECRET) =>
    signServiceToken(secret, {
      sub: "svc",
      scopes: ["jobs:read"],
      issuer: ISSUER,
      audience: AUDIENCE,
      expiresInS,
    });

  it("honours a remembered token only until it expires, as a fresh verification would", async () => {
    clock = Date.now();
    const token = await serviceToken(60);
    const first = await auth.authenticate(bearer(token));
    expect(first).toMatchObject({ kind: "service", owner: "service:svc" });
    expect(await auth.authenticate(bearer(token))).toBe(first);
    // exp plus the 30 s clock tolerance, and one more second: refused again, remembered or not.
    clock += 91_000;
    expect(await reason(auth.authenticate(bearer(token)))).toBe("token_expired");
  });

  it("never remembers a refusal, nor lets a changed token ride on a remembered one", async () => {
    clock = Date.now();
    const token = await serviceToken(600);
    await auth.authenticate(bearer(token));
    const [header, payload, signature] = token.split(".");
    // The first character: the last one's low bits are padding that a decoder may ignore.
    const forged = `${header}.${payload}.${signature?.startsWith("A") ? "B" : "A"}${signature?.slice(1)}`;
    for (let i = 0; i < 2; i++) {
      expect(await reason(auth.authenticate(bearer(forged)))).toBe("bad_signature");
    }
    const wrongKey = await serviceToken(600, "w".repeat(64));
    expect(await reason(auth.authenticate(bearer(wrongKey)))).toBe("bad_signature");
  });

  it("keeps a session token remembered for a minute at most, then verifies it again", async () => {
    clock = Date.now();
    const { token } = await auth.issueSession("0x000000000000000000000000000000000000dEaD");
    const first = await auth.authenticate(bearer(token));
    expect(first).toMatchObject({ kind: "wallet" });
    clock += 61_000;
    const again = await auth.authenticate(bearer(token));
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });
});
