import { execFileSync } from "node:child_process";
import { Agent } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { background, withCancelCause } from "../../src/context/context.js";
import { queryComputeApps } from "../../src/providers/nvidia-smi.js";
import { registryOf, rejectionOf, runOn } from "../helpers/providers.js";
import { waitUntil } from "../helpers/wait.js";

/**
 * The GPU-release check against a real nvidia-smi and a process that really
 * holds GPU memory. Runs only where both exist: `nvidia-smi` answers, and
 * QUENCH_GPU_ALLOC_COMMAND (JSON array) names a command that allocates GPU
 * memory and then waits, e.g.
 * ["python3", "-c", "import torch,time; x=torch.empty(2**28, device='cuda'); time.sleep(600)"].
 */
function why(): string | undefined {
  try {
    execFileSync(process.env.NVIDIA_SMI ?? "nvidia-smi", ["-L"], { timeout: 5_000, stdio: "pipe" });
  } catch {
    return "no working nvidia-smi on this machine";
  }
  if (!process.env.QUENCH_GPU_ALLOC_COMMAND) {
    return "QUENCH_GPU_ALLOC_COMMAND is not set (a command that allocates GPU memory and waits)";
  }
  return undefined;
}
const skipped = why();
if (skipped !== undefined) console.log(`skipping the real-GPU release test: ${skipped}`);

describe.skipIf(skipped !== undefined)("GPU release against a real nvidia-smi", () => {
  const agent = new Agent();
  afterAll(() => agent.close());

  it("a cancelled process that held GPU memory is seen to release it", async () => {
    const bin = process.env.NVIDIA_SMI ?? "nvidia-smi";
    const command = JSON.parse(process.env.QUENCH_GPU_ALLOC_COMMAND ?? "[]") as string[];
    const registry = await registryOf(
      {
        gpu: {
          kind: "process",
          command,
          grace_ms: 5_000,
          gpu_check: true,
          gpu_release_timeout_ms: 30_000,
        },
      },
      agent,
      { nvidiaSmi: bin },
    );
    const [ctx, cancel] = withCancelCause(background());
    const { result, recorded } = runOn(registry, "gpu", ctx, { model: "m", input: {} });
    // Wait until the GPU shows memory held by some process (the allocation took place).
    await waitUntil(
      async () => (await queryComputeApps(bin)).length > 0,
      60_000,
      "an allocation",
      250,
    );
    cancel();
    await rejectionOf(result);
    await waitUntil(() => recorded.gpuReleases.length === 1, 40_000, "the verdict", 100);
    expect(recorded.gpuReleases[0]).toMatchObject({ released: true });
  }, 120_000);
});
