import type { Dispatcher } from "undici";
import { type ProviderConfig, ProvidersConfigError } from "./config.js";
import { type DemoServer, startDemoServer } from "./demo-server.js";
import { falProvider } from "./fal.js";
import { httpProvider } from "./http.js";
import { checkNvidiaSmi } from "./nvidia-smi.js";
import { openaiProvider } from "./openai.js";
import { processProvider } from "./process.js";
import { replicateProvider } from "./replicate.js";
import { runpodProvider } from "./runpod.js";
import { createSemaphore, type Semaphore } from "./semaphore.js";
import type { Provider } from "./types.js";

export interface ProviderEntry {
  provider: Provider;
  /** The provider's max_concurrency, shared by every job on this instance. */
  slots: Semaphore;
}

export interface ProviderRegistry {
  get(name: string): ProviderEntry | undefined;
  names(): string[];
  /** Stops the built-in demo servers. */
  close(): Promise<void>;
}

/**
 * Builds every configured provider; `demo` providers get their own loopback
 * server. When a `process` provider sets `gpu_check`, nvidia-smi
 * (`nvidiaSmi`, NVIDIA_SMI) must answer now: a missing or failing one is a
 * start-up error, never a check silently skipped later.
 */
export async function createProviderRegistry(
  configs: Map<string, ProviderConfig>,
  agent: Dispatcher,
  options: { nvidiaSmi?: string } = {},
): Promise<ProviderRegistry> {
  const nvidiaSmi = options.nvidiaSmi ?? "nvidia-smi";
  const checked = [...configs].filter(([, c]) => c.kind === "process" && c.gpu_check);
  if (checked.length > 0) {
    await checkNvidiaSmi(nvidiaSmi).catch((err: unknown) => {
      throw new ProvidersConfigError(
        `provider "${checked[0]?.[0]}" sets gpu_check, but ${(err as Error).message} (set NVIDIA_SMI to the binary)`,
      );
    });
  }
  const entries = new Map<string, ProviderEntry>();
  const demos: DemoServer[] = [];
  for (const [name, config] of configs) {
    let provider: Provider;
    switch (config.kind) {
      case "http":
        provider = httpProvider(name, config, agent);
        break;
      case "openai":
        provider = openaiProvider(
          name,
          config,
          { baseUrl: config.base_url, apiKey: config.api_key, headers: config.headers },
          agent,
        );
        break;
      case "runpod":
        provider = runpodProvider(name, config, agent);
        break;
      case "replicate":
        provider = replicateProvider(name, config, agent);
        break;
      case "fal":
        provider = falProvider(name, config, agent);
        break;
      case "process":
        provider = processProvider(name, config, { nvidiaSmi });
        break;
      case "demo": {
        const server = await startDemoServer({
          tokensPerSecond: config.tokens_per_second,
          maxTokens: config.max_tokens,
        });
        demos.push(server);
        provider = openaiProvider(name, config, { baseUrl: server.baseUrl }, agent);
        break;
      }
    }
    entries.set(name, { provider, slots: createSemaphore(config.max_concurrency) });
  }
  return {
    get: (name) => entries.get(name),
    names: () => [...entries.keys()],
    close: async () => {
      await Promise.all(demos.map((d) => d.close()));
    },
  };
}
