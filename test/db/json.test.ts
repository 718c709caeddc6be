import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { storableJson } from "../../src/db/json.js";

describe("storableJson", () => {
  it("replaces NUL characters in strings, at any depth, with U+FFFD", () => {
    expect(storableJson({ text: "a\u0000b", list: ["\u0000"], deep: { k: "x\u0000" } })).toEqual({
      text: "a\ufffdb",
      list: ["\ufffd"],
      deep: { k: "x\ufffd" },
    });
  });

  it("replaces lone surrogates, keeps proper pairs, and cleans keys too", () => {
    expect(storableJson({ t: "a\ud800b", u: "\udc00", ok: "😀", "k\u0000": 1 })).toEqual({
      t: "a\ufffdb",
      u: "\ufffd",
      ok: "😀",
      "k\ufffd": 1,
    });
  });

  it("leaves the visible text \\u0000 (an escaped backslash) alone", () => {
    const literal = "path\\u0000name";
    expect(storableJson({ literal })).toEqual({ literal });
    expect(storableJson({ both: "\\\u0000" })).toEqual({ both: "\\\ufffd" });
  });

  it("returns values without NUL unchanged, whatever they are", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        fc.pre(!JSON.stringify(value)?.includes("u0000"));
        expect(storableJson(value)).toBe(value);
      }),
    );
  });

  it("never leaves a NUL or a lone surrogate in anything it returns", () => {
    // Strings over every code point, so NUL and backslashes do occur.
    const withNul = fc.jsonValue({ stringUnit: "binary" });
    let sawNul = 0;
    fc.assert(
      fc.property(withNul, (value) => {
        if (/\\u(0000|d[89a-f])/.test(JSON.stringify(value) ?? "")) sawNul++;
        expect(JSON.stringify(storableJson(value)) ?? "").not.toMatch(
          /(?<!\\)(\\\\)*\\u(0000|d[89a-f])/,
        );
      }),
      { numRuns: 2_000 },
    );
    expect(sawNul).toBeGreaterThan(0);
  });
});
