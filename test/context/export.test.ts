import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import * as direct from "../../src/context/context.js";

const run = promisify(execFile);

describe("package export", () => {
  it("Node resolves quench/context through package.json exports to the context module", async () => {
    const script = `import("quench/context").then((m) => console.log(JSON.stringify(Object.keys(m).sort())))`;
    const { stdout } = await run(
      process.execPath,
      ["--conditions=source", "--import", "tsx", "-e", script],
      { cwd: new URL("../..", import.meta.url), timeout: 20_000 },
    );
    expect(JSON.parse(stdout)).toEqual(Object.keys(direct).sort());
  });
});
