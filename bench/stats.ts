export interface Stats {
  median: number;
  p95: number;
  p99: number;
  min: number;
  samples: number;
}

/** Nearest-rank percentiles of `values`. */
export function summarize(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
  return {
    median: at(50),
    p95: at(95),
    p99: at(99),
    min: sorted[0] ?? Number.NaN,
    samples: sorted.length,
  };
}

export const fmt = (n: number, digits = 2) => n.toFixed(digits);
