import { SCOPES, type Scope } from "../../api/auth/principal.js";
import {
  DEFAULT_SERVICE_AUDIENCE,
  DEFAULT_SERVICE_ISSUER,
  signServiceToken,
} from "../../api/auth/tokens.js";
import { loadConfig } from "../../config.js";
import { resolveSecrets } from "../../secrets.js";
import { UsageError } from "../errors.js";

export const DEFAULT_SCOPES: Scope[] = ["jobs:submit", "jobs:read", "jobs:cancel"];

/**
 * `quench token`: a development service token, signed with the secret the
 * server uses (SERVICE_JWT_SECRET, else the one generated in DATA_DIR), so it
 * must run with the server's DATA_DIR. Production tokens come from your
 * issuer, never from here.
 */
export async function mintToken(o: {
  env: NodeJS.ProcessEnv;
  scopes: string[] | undefined;
  sub: string | undefined;
  ttl: string | undefined;
}): Promise<{ token: string; sub: string; scopes: Scope[]; expires_at: string }> {
  const config = loadConfig(o.env);
  if (config.env === "production") {
    throw new UsageError(
      "quench token is for development: in production your issuer mints service tokens",
    );
  }
  if (config.serviceJwt.jwksUrl !== undefined) {
    throw new UsageError(
      "SERVICE_JWKS_URL is set: tokens come from the issuer that holds its keys",
    );
  }
  const scopes = (o.scopes ?? []).flatMap((s) => s.split(/[\s,]+/)).filter(Boolean);
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    throw new UsageError(`unknown scope ${unknown.join(", ")}: choose from ${SCOPES.join(", ")}`);
  }
  const ttlS = o.ttl === undefined ? 24 * 3600 : Number(o.ttl);
  if (!Number.isInteger(ttlS) || ttlS < 1)
    throw new UsageError("--ttl must be a whole number of seconds");
  const sub = o.sub ?? "cli";
  if (!/^[\x21-\x7e]{1,64}$/.test(sub))
    throw new UsageError("--sub must be 1–64 visible ASCII characters");
  const { serviceJwtSecret } = await resolveSecrets(config);
  if (serviceJwtSecret === undefined) throw new UsageError("no service token secret is configured");
  const chosen = scopes.length > 0 ? (scopes as Scope[]) : DEFAULT_SCOPES;
  const token = await signServiceToken(serviceJwtSecret, {
    sub,
    scopes: chosen,
    issuer: config.serviceJwt.issuer ?? DEFAULT_SERVICE_ISSUER,
    audience: config.serviceJwt.audience ?? DEFAULT_SERVICE_AUDIENCE,
    expiresInS: ttlS,
  });
  return {
    token,
    sub,
    scopes: chosen,
    expires_at: new Date(Date.now() + ttlS * 1000).toISOString(),
  };
}
