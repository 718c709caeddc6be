import { Agent } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { background, withCancelCause } from "../../src/context/context.js";
import { registryOf, runOn } from "../helpers/providers.js";

const agent = new Agent();
afterAll(() => agent.close());

describe("the demo provider", () => {
  it("answers the prompt it was given, deterministically, at the configured rate", async () => {
    const registry = await registryOf(
      { demo: { kind: "demo", tokens_per_second: 5_000, max_tokens: 60 } },
      agent,
    );
    try {
      const run = () => {
        const [ctx] = withCancelCause(background());
        return runOn(registry, "demo", ctx, {
          model: "demo",
          input: {
            messages: [
              { role: "system", content: "be brief" },
              { role: "user", content: "Write me a long poem" },
            ],
          },
        }).result as Promise<{ text: string; usage: { completion_tokens: number } }>;
      };
      const first = await run();
      expect(first.text).toMatch(
        /^You asked: "Write me a long poem"\. This is quench's demo provider/,
      );
      expect(first.text).toContain("\n1. Write me a long poem");
      expect(first.usage.completion_tokens).toBe(60);
      expect((await run()).text).toBe(first.text);
    } finally {
      await registry.close();
    }
  });

  it("without a prompt streams its fixed sentence", async () => {
    const registry = await registryOf(
      { demo: { kind: "demo", tokens_per_second: 5_000, max_tokens: 5 } },
      agent,
    );
    try {
      const [ctx] = withCancelCause(background());
      const { result } = runOn(registry, "demo", ctx, { model: "demo", input: { messages: [] } });
      expect(((await result) as { text: string }).text.trim()).toBe(
        "quench streams these tokens from",
      );
    } finally {
      await registry.close();
    }
  });
});
