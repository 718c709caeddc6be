import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { messageOf } from "./helpers/errors.js";

const configError = (env: Record<string, string>) => messageOf(() => loadConfig(env), ConfigError);

describe("loadConfig", () => {
  it("gives a development default for everything: embedded database, loopback, port 8080", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      env: "development",
      port: 8080,
      host: "127.0.0.1",
      databaseUrl: undefined,
      dataDir: ".data",
      role: "all",
      maxAttempts: 3,
      siweChainIds: [1],
      corsOrigins: [],
      logLevel: "info",
    });
    expect(config.instanceId).toMatch(/-\d+$/);
  });

  it("takes INSTANCE_ID, else FLY_MACHINE_ID, for the instance", () => {
    expect(loadConfig({ FLY_MACHINE_ID: "e286" }).instanceId).toBe("e286");
    expect(loadConfig({ FLY_MACHINE_ID: "e286", INSTANCE_ID: "mine" }).instanceId).toBe("mine");
  });

  it("listens on every interface in production", () => {
    const config = loadConfig({
      NODE_ENV: "production",
      DATABASE_URL: "postgres://db.internal/quench",
      SESSION_SECRET: "x".repeat(32),
    });
    expect(config.host).toBe("0.0.0.0");
  });

  it("parses lists and chain ids, and treats blank values as unset", () => {
    const config = loadConfig({
      CORS_ORIGINS: "https://a.example, https://b.example,",
      SIWE_CHAIN_IDS: "1, 8453",
      SIWE_DOMAINS: "portal.example",
      PORT: "",
    });
    expect(config.corsOrigins).toEqual(["https://a.example", "https://b.example"]);
    expect(config.siweChainIds).toEqual([1, 8453]);
    expect(config.siweDomains).toEqual(["portal.example"]);
    expect(config.port).toBe(8080);
  });

  it("names every bad variable in one line", () => {
    const message = configError({ PORT: "abc", ROLE: "boss", SIWE_CHAIN_IDS: "1,x" });
    expect(message.split("\n")).toHaveLength(1);
    expect(message).toContain('PORT must be a number (got "abc")');
    expect(message).toContain("ROLE");
    expect(message).toContain("SIWE_CHAIN_IDS must be a comma-separated list of chain ids");
  });

  it("refuses short secrets without echoing them", () => {
    const message = configError({ SESSION_SECRET: "hunter2", SERVICE_JWT_SECRET: "short-secret" });
    expect(message).toBe(
      "invalid configuration: SESSION_SECRET must be at least 32 bytes; SERVICE_JWT_SECRET must be at least 32 bytes",
    );
  });

  it("never echoes a malformed URL, which may carry a password", () => {
    const message = configError({ DATABASE_URL: "mysql://root:pa55word@db" });
    expect(message).toContain("DATABASE_URL must be a postgres:// or postgresql:// URL");
    expect(message).not.toContain("pa55word");
  });
});
