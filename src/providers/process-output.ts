import { StringDecoder } from "node:string_decoder";

const TAIL_CHARS = 4096;
const MAX_LINE_CHARS = 16 * 1024 * 1024;

/**
 * A progress report line (SPEC.md section 4, `process`): a JSON object with
 * a top-level `progress` key. Returns the key's value, or undefined for any
 * other line (which is output).
 */
export function progressOf(line: string): unknown {
  if (!line.startsWith("{") || !line.includes('"progress"')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    if (
      typeof value === "object" &&
      value !== null &&
      !Array.isArray(value) &&
      "progress" in value
    ) {
      return (value as { progress: unknown }).progress ?? null;
    }
  } catch {
    // Not JSON: output like any other line.
  }
  return undefined;
}

/**
 * Reads a child's stream line by line: keeps the last complete output line
 * (the result, for stdout) and a short tail; with `onProgress`, progress
 * report lines go there instead and are neither output nor tail.
 */
export function lineCollector(onProgress?: (progress: unknown) => void) {
  const decoder = new StringDecoder("utf8");
  let current = "";
  let last = "";
  let tail = "";
  return {
    push(chunk: Buffer) {
      const lines = (current + decoder.write(chunk)).split("\n");
      current = (lines.pop() ?? "").slice(-MAX_LINE_CHARS);
      for (const raw of lines) {
        const line = raw.trim();
        if (onProgress !== undefined) {
          const progress = progressOf(line);
          if (progress !== undefined) {
            onProgress(progress);
            continue;
          }
        }
        tail = `${tail}${raw}\n`.slice(-TAIL_CHARS);
        if (line !== "") last = line;
      }
    },
    /** The last output line: the unterminated one if any, else the last complete one. */
    lastLine: () => {
      const pending = current.trim();
      return pending !== "" && (onProgress === undefined || progressOf(pending) === undefined)
        ? pending
        : last;
    },
    /** The tail of the output, the unterminated line included. */
    tail: () =>
      `${tail}${onProgress !== undefined && progressOf(current.trim()) !== undefined ? "" : current}`.slice(
        -TAIL_CHARS,
      ),
  };
}
