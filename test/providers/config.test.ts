import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  defaultProviders,
  loadProvidersFile,
  ProvidersConfigError,
  parseProviders,
} from "../../src/providers/config.js";
import { messageOf } from "../helpers/errors.js";

const problem = (raw: unknown, env: Record<string, string> = {}) =>
  messageOf(() => parseProviders(raw, env), ProvidersConfigError);

describe("provider configuration", () => {
  it("without a file, only demo is configured, with defaults", () => {
    const providers = defaultProviders();
    expect([...providers.keys()]).toEqual(["demo"]);
    expect(providers.get("demo")).toMatchObject({ kind: "demo", max_concurrency: 64, retries: 2 });
  });

  it("replaces ${NAME} from the environment in every string", () => {
    const providers = parseProviders(
      {
        "modal-us": {
          kind: "http",
          url: "https://${HOST}/infer",
          headers: { Authorization: "Bearer ${MODAL_TOKEN}" },
          max_concurrency: 32,
        },
      },
      { HOST: "example.modal.run", MODAL_TOKEN: "s3cret" },
    );
    expect(providers.get("modal-us")).toMatchObject({
      url: "https://example.modal.run/infer",
      headers: { Authorization: "Bearer s3cret" },
      max_concurrency: 32,
    });
  });

  it("a missing variable is an error naming the provider, field and variable", () => {
    expect(
      problem({
        together: { kind: "openai", base_url: "https://x/v1", api_key: "${TOGETHER_API_KEY}" },
      }),
    ).toBe(
      'invalid providers: provider "together" field api_key: environment variable TOGETHER_API_KEY is not set',
    );
  });

  it("names the provider and field of every invalid value, and refuses unknown fields", () => {
    const message = problem({
      a: { kind: "http", url: "ftp://nope" },
      b: { kind: "process", command: [] },
      c: { kind: "openai", base_url: "https://x/v1", max_concurency: 3 },
      d: { kind: "teleport" },
    });
    expect(message).toContain('provider "a" field url: must be an http:// or https:// URL');
    expect(message).toContain('provider "b" field command:');
    expect(message).toContain('provider "c" field');
    expect(message).toContain("max_concurency");
    expect(message).toContain('provider "d" field kind:');
  });

  it("refuses a bad provider name and an empty configuration", () => {
    expect(problem({ "no spaces": { kind: "demo" } })).toContain(
      'provider "no spaces": name must match',
    );
    expect(problem({})).toBe("invalid providers: none configured");
    expect(problem([])).toBe("providers: must be a JSON object of name → provider");
  });

  it("reports an unreadable file and invalid JSON with the path", async () => {
    const dir = await mkdtemp(join(tmpdir(), "quench-providers-"));
    const file = join(dir, "providers.json");
    await expect(loadProvidersFile(file)).rejects.toThrow(`PROVIDERS_FILE ${file}:`);
    await writeFile(file, "{ not json");
    await expect(loadProvidersFile(file)).rejects.toThrow(/invalid JSON/);
    await writeFile(file, JSON.stringify({ demo: { kind: "demo", tokens_per_second: 5 } }));
    expect((await loadProvidersFile(file)).get("demo")).toMatchObject({ tokens_per_second: 5 });
  });
});
