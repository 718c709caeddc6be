import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import { type Dispatcher, fetch as undiciFetch } from "undici";
import { getAddress, isAddress } from "viem";
import { ApiError } from "../errors.js";
import { type Principal, SCOPES, type Scope, WALLET_SCOPES } from "./principal.js";

/** Session tokens name us as issuer and this audience; anything else is a service token. */
const SESSION_ISSUER = "quench";
const SESSION_AUDIENCE = "quench-session";
/** Defaults for development service tokens when SERVICE_JWT_ISSUER / _AUDIENCE are unset. */
export const DEFAULT_SERVICE_ISSUER = "quench-dev";
export const DEFAULT_SERVICE_AUDIENCE = "quench";
const ASYMMETRIC_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
const CLOCK_TOLERANCE_S = 30;
/** How long a verified token is taken on trust at most (see `createAuthenticator`). */
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;

export interface AuthOptions {
  sessionSecret: string;
  sessionTtlMs?: number;
  service: {
    secret: string | undefined;
    jwksUrl: string | undefined;
    issuer: string;
    audience: string;
  };
  /** The shared undici agent: JWKS fetches go through it like every outbound request. */
  agent: Dispatcher;
  /** The clock (ms since the epoch) that expiry is judged by; `Date.now` unless a test sets it. */
  now?: () => number;
}

export interface Authenticator {
  /** A session for `address`, ending after the session lifetime or at `notAfter`, whichever is first. */
  issueSession(address: string, notAfter?: Date): Promise<{ token: string; expiresAt: Date }>;
  /** The principal of an `Authorization: Bearer …` header; throws 401 with a `reason`. */
  authenticate(authorization: string | undefined): Promise<Principal>;
}

/** 401 with a stable `reason` beside SPEC's code, so a client can tell the failures apart. */
export function unauthenticated(
  reason: string,
  message: string,
  extra: Record<string, unknown> = {},
): ApiError {
  return new ApiError("unauthenticated", message, { reason, ...extra });
}

/**
 * Tokens are verified once and then remembered by their exact text: a client
 * sends the same token with every request, and each verification is a
 * WebCrypto call through libuv's threadpool (0.4 ms median, 2.5 ms p99 of a
 * cancel's path under load, the largest step before its abort). A remembered
 * token is honoured until it expires as jose would judge it (`exp` plus the
 * clock tolerance) and for at most `VERIFIED_TTL_MS`, so a key taken out of the
 * issuer's key set stops being honoured within a minute; at most
 * `VERIFIED_MAX` are kept, the least recently used dropped. Only successes are
 * kept: a refused token is verified again every time.
 */
export function createAuthenticator(options: AuthOptions): Authenticator {
  const now = options.now ?? Date.now;
  const verifiedTokens = new Map<string, { principal: Principal; until: number }>();
  const sessionKey = new TextEncoder().encode(options.sessionSecret);
  const sessionTtlMs = options.sessionTtlMs ?? 24 * 3600_000;
  const { service } = options;
  const serviceKey =
    service.secret !== undefined
      ? new TextEncoder().encode(service.secret)
      : service.jwksUrl !== undefined
        ? createRemoteJWKSet(new URL(service.jwksUrl), {
            timeoutDuration: 5_000,
            [customFetch]: (url, init) =>
              undiciFetch(url, {
                ...(init as object),
                dispatcher: options.agent,
              }) as unknown as Promise<Response>,
          })
        : undefined;

  async function verifySession(token: string): Promise<Principal> {
    const { payload } = await verified(() =>
      jwtVerify(token, sessionKey, {
        currentDate: new Date(now()),
        algorithms: ["HS256"],
        issuer: SESSION_ISSUER,
        audience: SESSION_AUDIENCE,
        requiredClaims: ["exp", "sub"],
        clockTolerance: CLOCK_TOLERANCE_S,
      }),
    );
    if (typeof payload.sub !== "string" || !isAddress(payload.sub)) {
      throw unauthenticated("claim_invalid", "session token has no wallet address");
    }
    return { kind: "wallet", owner: getAddress(payload.sub), scopes: WALLET_SCOPES };
  }

  async function verifyService(token: string): Promise<Principal> {
    if (serviceKey === undefined) {
      throw unauthenticated(
        "service_tokens_disabled",
        "service tokens are not configured on this server",
      );
    }
    const verifyOptions = {
      currentDate: new Date(now()),
      issuer: service.issuer,
      audience: service.audience,
      requiredClaims: ["exp", "iss", "aud", "sub"],
      clockTolerance: CLOCK_TOLERANCE_S,
    };
    const { payload } = await verified(() =>
      serviceKey instanceof Uint8Array
        ? jwtVerify(token, serviceKey, { ...verifyOptions, algorithms: ["HS256"] })
        : jwtVerify(token, serviceKey, { ...verifyOptions, algorithms: ASYMMETRIC_ALGORITHMS }),
    );
    if (typeof payload.sub !== "string" || payload.sub === "") {
      throw unauthenticated("claim_invalid", "service token has no subject");
    }
    return { kind: "service", owner: `service:${payload.sub}`, scopes: scopesOf(payload) };
  }

  return {
    async issueSession(address, notAfter) {
      const lifetimeEnd = Date.now() + sessionTtlMs;
      const expiresAt = new Date(
        notAfter === undefined ? lifetimeEnd : Math.min(lifetimeEnd, notAfter.getTime()),
      );
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(getAddress(address))
        .setIssuer(SESSION_ISSUER)
        .setAudience(SESSION_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
        .sign(sessionKey);
      return { token, expiresAt };
    },

    async authenticate(authorization) {
      if (authorization === undefined || authorization.trim() === "") {
        throw unauthenticated("missing_token", "an Authorization: Bearer token is required");
      }
      const match = /^Bearer ([A-Za-z0-9_\-.=]+)$/i.exec(authorization.trim());
      if (match?.[1] === undefined) {
        throw unauthenticated(
          "malformed_authorization",
          "the Authorization header must be 'Bearer <token>'",
        );
      }
      const token = match[1];
      const at = now();
      const known = verifiedTokens.get(token);
      if (known !== undefined) {
        verifiedTokens.delete(token);
        if (at < known.until) {
          verifiedTokens.set(token, known);
          return known.principal;
        }
      }
      let claims: JWTPayload;
      try {
        claims = decodeJwt(token);
      } catch {
        throw unauthenticated("malformed_token", "the bearer token is not a JWT");
      }
      const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      const isSession = claims.iss === SESSION_ISSUER && audiences.includes(SESSION_AUDIENCE);
      const principal = await (isSession ? verifySession(token) : verifyService(token));
      // exp is a required claim of both kinds, so a verified token has it.
      const until = Math.min(((claims.exp ?? 0) + CLOCK_TOLERANCE_S) * 1000, at + VERIFIED_TTL_MS);
      verifiedTokens.set(token, { principal, until });
      if (verifiedTokens.size > VERIFIED_MAX) {
        const oldest = verifiedTokens.keys().next().value;
        if (oldest !== undefined) verifiedTokens.delete(oldest);
      }
      return principal;
    },
  };
}

function scopesOf(payload: JWTPayload): ReadonlySet<Scope> {
  const raw = typeof payload.scope === "string" ? payload.scope.split(" ") : [];
  return new Set(raw.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)));
}

/** Runs a jose verification, turning its errors into 401s with stable reasons. */
async function verified<T>(verify: () => Promise<T>): Promise<T> {
  try {
    return await verify();
  } catch (err) {
    const e = err as { code?: string; claim?: string; message?: string };
    switch (e.code) {
      case "ERR_JWT_EXPIRED":
        throw unauthenticated("token_expired", "the token has expired");
      case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
        throw unauthenticated("bad_signature", "the token's signature does not verify");
      case "ERR_JOSE_ALG_NOT_ALLOWED":
      case "ERR_JOSE_NOT_SUPPORTED":
        throw unauthenticated(
          "algorithm_not_allowed",
          "the token's algorithm is not accepted here",
        );
      case "ERR_JWT_CLAIM_VALIDATION_FAILED":
        throw unauthenticated(
          "claim_invalid",
          `the token's ${e.claim ?? "claims"} claim is missing or wrong`,
        );
      case "ERR_JWKS_NO_MATCHING_KEY":
      case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
        throw unauthenticated(
          "no_matching_key",
          "no key of the issuer's key set matches the token",
        );
      case "ERR_JWKS_TIMEOUT":
      case "ERR_JWKS_INVALID":
        throw unauthenticated("jwks_unavailable", "the issuer's key set could not be fetched");
      default:
        throw unauthenticated("invalid_token", "the token is not valid");
    }
  }
}

/** Signs a service token with an HS256 secret: for development (`quench token`) and tests. */
export async function signServiceToken(
  secret: string,
  claims: { sub: string; scopes: Scope[]; issuer: string; audience: string; expiresInS: number },
): Promise<string> {
  return new SignJWT({ scope: claims.scopes.join(" ") })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuer(claims.issuer)
    .setAudience(claims.audience)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + claims.expiresInS)
    .sign(new TextEncoder().encode(secret));
}
