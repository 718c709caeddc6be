import { describe, expect, it } from "vitest";
import { isDatabaseUnavailable, retryWhileUnavailable } from "../../src/db/unavailable.js";

const coded = (code: string) => Object.assign(new Error(code), { code });
/** drizzle's DrizzleQueryError wraps the driver's error as its `cause`. */
const wrapped = (cause: Error) => Object.assign(new Error("Failed query: select 1"), { cause });

describe("database unavailable", () => {
  it("recognises connection failures and not-now SQLSTATEs, wrapped or not", () => {
    for (const code of [
      "ECONNREFUSED",
      "CONNECTION_CLOSED",
      "CONNECT_TIMEOUT",
      "57P01",
      "57P03",
      "08006",
      "57014",
    ]) {
      expect(isDatabaseUnavailable(coded(code)), code).toBe(true);
      expect(isDatabaseUnavailable(wrapped(coded(code))), `wrapped ${code}`).toBe(true);
    }
    for (const code of ["23505", "42P01", "22P02"]) {
      expect(isDatabaseUnavailable(wrapped(coded(code))), code).toBe(false);
    }
    expect(isDatabaseUnavailable(new Error("plain"))).toBe(false);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
  });

  it("retries a write through a blip, and gives up on other errors at once", async () => {
    let calls = 0;
    const result = await retryWhileUnavailable(async () => {
      calls++;
      if (calls < 3) throw wrapped(coded("ECONNREFUSED"));
      return "written";
    }, 2_000);
    expect(result).toBe("written");
    expect(calls).toBe(3);

    let other = 0;
    await expect(
      retryWhileUnavailable(async () => {
        other++;
        throw wrapped(coded("23505"));
      }, 2_000),
    ).rejects.toThrow("Failed query");
    expect(other).toBe(1);
  });

  it("throws the last unavailable error once its budget is spent", async () => {
    const started = performance.now();
    await expect(
      retryWhileUnavailable(() => Promise.reject(coded("ECONNREFUSED")), 200),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
    // It gave up (a budget of 200 ms, not an endless retry).
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
