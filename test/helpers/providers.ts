import type { Agent } from "undici";
import type { Context } from "../../src/context/context.js";
import { parseProviders } from "../../src/providers/config.js";
import { type PolicyOptions, runWithPolicies } from "../../src/providers/policy.js";
import { createProviderRegistry, type ProviderRegistry } from "../../src/providers/registry.js";
import type { ExecutionCall, RemoteStop } from "../../src/providers/types.js";

/** A registry of providers from raw configuration (as it would appear in PROVIDERS_FILE). */
export function registryOf(
  raw: Record<string, unknown>,
  agent: Agent,
  options: { nvidiaSmi?: string } = {},
): Promise<ProviderRegistry> {
  return createProviderRegistry(parseProviders(raw, {}), agent, options);
}

export interface Recorded {
  progress: unknown[];
  notes: { type: string; data: Record<string, unknown> }[];
  remoteIds: string[];
  /** Remote-queue stops, reported after the attempt settled. */
  remoteStops: RemoteStop[];
  /** Structured progress reports (`process`), in order. */
  reports: unknown[];
  /** `gpu_check` releases, reported after the attempt settled. */
  gpuReleases: Parameters<NonNullable<ExecutionCall["gpuRelease"]>>[0][];
}

/** Runs one execution on `provider` of `registry` the way the runner does, recording what it reports. */
export function runOn(
  registry: ProviderRegistry,
  provider: string,
  ctx: Context,
  call: { model: string; input: unknown },
  options: Partial<PolicyOptions> = {},
): { result: Promise<unknown>; recorded: Recorded } {
  const entry = registry.get(provider);
  if (entry === undefined) throw new Error(`no provider ${provider}`);
  const recorded: Recorded = {
    progress: [],
    notes: [],
    remoteIds: [],
    remoteStops: [],
    reports: [],
    gpuReleases: [],
  };
  const execution: ExecutionCall = {
    ctx,
    executionId: "exec-1",
    model: call.model,
    input: call.input,
    progress: (p) => recorded.progress.push(p),
    activity: () => {},
    remoteId: (id) => recorded.remoteIds.push(id),
    note: (type, data) => recorded.notes.push({ type, data }),
    remoteStop: (stop) => recorded.remoteStops.push(stop),
    report: (p) => recorded.reports.push(p),
    gpuRelease: (r) => recorded.gpuReleases.push(r),
  };
  const result = runWithPolicies(entry.provider, entry.slots, execution, {
    retries: options.retries ?? 0,
    timeoutMs: options.timeoutMs ?? null,
    random: options.random ?? (() => 0),
  });
  result.catch(() => {}); // observed by the test; avoid an unhandled rejection before it awaits
  return { result, recorded };
}

/** The rejection of `promise`, failing the test if it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}
