/**
 * JSON as Postgres can store it. `jsonb` refuses two things JavaScript
 * strings may hold: the NUL character (U+0000) and a lone UTF-16 surrogate
 * (a provider's stream split inside an emoji, say). Both become U+FFFD, in
 * values and keys, so such data never fails a write on either driver.
 */

/** An escape JSON.stringify writes only for NUL or a lone surrogate, not after an escaped backslash. */
const UNSTORABLE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/;

export function storableJson<T>(value: T): T {
  if (value === undefined || value === null) return value;
  const text = JSON.stringify(value);
  if (text === undefined || !UNSTORABLE.test(text)) return value;
  return clean(JSON.parse(text)) as T;
}

function clean(value: unknown): unknown {
  if (typeof value === "string") return value.replaceAll("\u0000", "\ufffd").toWellFormed();
  if (Array.isArray(value)) return value.map(clean);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [clean(k) as string, clean(v)]),
    );
  }
  return value;
}
