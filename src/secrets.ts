import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "./config.js";

export interface Secrets {
  /** HS256 key of wallet session tokens. */
  sessionSecret: string;
  /** HS256 key of service tokens; undefined when SERVICE_JWKS_URL is used instead. */
  serviceJwtSecret: string | undefined;
}

/**
 * The secrets this instance signs and verifies with. In production they come
 * from the environment (the config refuses to start without SESSION_SECRET).
 * In development, missing ones are generated once and kept in
 * `DATA_DIR/secrets.json` (mode 0600), so sessions and dev service tokens
 * survive a restart.
 */
export async function resolveSecrets(config: Config): Promise<Secrets> {
  const wantsServiceSecret =
    config.serviceJwt.secret === undefined && config.serviceJwt.jwksUrl === undefined;
  if (config.env === "production" || (config.sessionSecret !== undefined && !wantsServiceSecret)) {
    return {
      sessionSecret: config.sessionSecret ?? "",
      serviceJwtSecret: config.serviceJwt.secret,
    };
  }
  const file = join(config.dataDir, "secrets.json");
  let stored: Partial<Record<"session_secret" | "service_jwt_secret", string>> = {};
  try {
    stored = JSON.parse(await readFile(file, "utf8"));
  } catch {
    // First start: nothing stored yet.
  }
  const generated = {
    session_secret: stored.session_secret ?? randomBytes(32).toString("base64url"),
    service_jwt_secret: stored.service_jwt_secret ?? randomBytes(32).toString("base64url"),
  };
  if (
    generated.session_secret !== stored.session_secret ||
    generated.service_jwt_secret !== stored.service_jwt_secret
  ) {
    await mkdir(config.dataDir, { recursive: true });
    await writeFile(file, `${JSON.stringify(generated, null, 2)}\n`, { mode: 0o600 });
  }
  return {
    sessionSecret: config.sessionSecret ?? generated.session_secret,
    serviceJwtSecret: wantsServiceSecret ? generated.service_jwt_secret : config.serviceJwt.secret,
  };
}
