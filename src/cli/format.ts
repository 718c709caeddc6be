/** Human-readable figures for the CLI's output. */

export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.floor((ms % 60_000) / 1_000)} s`;
}

/** From `start` to `end` (or now); empty before it started. */
export function elapsed(start: string | null, end: string | null, now = Date.now()): string {
  if (start === null) return "";
  return duration((end === null ? now : Date.parse(end)) - Date.parse(start));
}

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
