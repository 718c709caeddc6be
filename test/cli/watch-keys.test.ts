import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { followJob } from "../../src/cli/commands/watch.js";
import { createClient } from "../../src/client/client.js";
import type { Database } from "../../src/db/connection.js";
import { listen, startApi, type TestApi } from "../helpers/api.js";
import { useTestDatabase } from "../helpers/databases.js";
import { waitUntil } from "../helpers/wait.js";

/** Keys "typed" by the test, in order, each when `press` is called. */
function keyboard() {
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  return {
    press(key: string) {
      queue.push(key);
      wake?.();
    },
    keys: async function* (signal: AbortSignal) {
      while (!signal.aborted) {
        const key = queue.shift();
        if (key !== undefined) {
          yield key;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      }
    },
  };
}

describe("quench watch on a terminal: keys", () => {
  let database: Database;
  useTestDatabase("pglite", (fresh) => {
    database = fresh.database;
  });
  let api: TestApi;
  let server: Awaited<ReturnType<typeof listen>>;
  let client: ReturnType<typeof createClient>;
  beforeAll(async () => {
    api = await startApi(database, {
      slow: { kind: "demo", tokens_per_second: 20, max_tokens: 100_000 },
    });
    server = await listen(api.app);
    client = createClient({
      url: server.url,
      token: await api.serviceToken("cli", ["jobs:submit", "jobs:read", "jobs:cancel"]),
    });
  });
  afterAll(async () => {
    await server?.close();
    await api?.close();
  });

  /** `quench watch` of `id` on a pretend terminal, with keys the test presses. */
  function watch(id: string) {
    const board = keyboard();
    const screen = {
      tty: true,
      columns: 120,
      text: "",
      write(t: string) {
        screen.text += t;
      },
    };
    const watching = followJob(client, id, { json: false, screen, keys: board.keys });
    return { press: board.press, screen, watching };
  }

  const submit = async () =>
    (
      await client.submit({
        executions: [{ key: "slow", provider: "slow", model: "m", input: {} }],
      })
    ).id;

  it("c asks, any other key keeps it running, c then y cancels: exit 1 and the job cancelled", async () => {
    const id = await submit();
    const { press, screen, watching } = watch(id);
    await waitUntil(() => screen.text.includes("running"), 10_000, "the job running");
    press("c");
    await waitUntil(() => screen.text.includes("y cancels it"), 5_000, "the question");
    press("x");
    await waitUntil(
      () => screen.text.lastIndexOf("c cancel the job") > screen.text.lastIndexOf("y cancels it"),
      5_000,
      "dismissed",
    );
    expect((await client.job(id)).status).toBe("running");
    press("c");
    press("y");
    expect(await watching).toBe(1);
    const job = await client.job(id);
    expect(job).toMatchObject({
      status: "cancelled",
      cancel_reason: "cancelled from quench watch",
    });
    expect(screen.text.trim().split("\n").at(-1)).toMatch(
      /cancelled after .*work stopped \d+ ms after the cancel$/,
    );
  });

  it("q stops watching with exit 0 and leaves the job running", async () => {
    const id = await submit();
    const { press, screen, watching } = watch(id);
    await waitUntil(() => screen.text.includes("running"), 10_000, "the job running");
    press("q");
    expect(await watching).toBe(0);
    expect(screen.text).toContain(`stopped watching; job ${id} keeps running`);
    expect((await client.job(id)).status).toBe("running");
    await client.cancel(id);
  });
});
