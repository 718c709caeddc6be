import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/metrics.js";
import { ROOT } from "../helpers/process.js";

describe("the README's metrics table", () => {
  it("names exactly the quench series /metrics serves, with their types", async () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const documented = [
      ...readme.matchAll(/^\| `(quench_[a-z_]+)` \| (counter|gauge|histogram) \|/gm),
    ].map((m) => [m[1], m[2]]);
    const metrics = createMetrics({
      runningJobs: () => 0,
      webhookBacklog: async () => 0,
      defaults: false,
    });
    const served = (await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, m.type]);
    expect(documented.sort()).toEqual(served.sort());
  });
});
