import type { UsageRecord } from "../db/schema.js";

/**
 * An execution's `usage` (SPEC.md section 3): `gpuMs` of GPU time, billed by
 * the provider (`source: "provider"`) or measured here (`wall_clock`), priced
 * at the provider's `price_per_second` when the operator set one.
 */
export function usageOf(
  gpuMs: number,
  source: UsageRecord["source"],
  pricePerSecond: number | undefined,
): UsageRecord {
  const ms = Math.max(0, Math.round(gpuMs));
  return {
    gpu_ms: ms,
    source,
    cost_usd: pricePerSecond === undefined ? null : Math.round(ms * pricePerSecond * 1_000) / 1e6,
  };
}

/** A job's `usage`: its executions' GPU time summed; `cost_usd` sums the priced ones (null if none is). */
export function jobUsage(executions: { usage: UsageRecord | null }[]): {
  gpu_ms: number;
  cost_usd: number | null;
} {
  let gpuMs = 0;
  let cost: number | null = null;
  for (const e of executions) {
    gpuMs += e.usage?.gpu_ms ?? 0;
    if (e.usage?.cost_usd != null) cost = Math.round(((cost ?? 0) + e.usage.cost_usd) * 1e6) / 1e6;
  }
  return { gpu_ms: gpuMs, cost_usd: cost };
}
