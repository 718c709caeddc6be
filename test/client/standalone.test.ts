import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/process.js";

/**
 * Every module `entry` reaches through its imports, `import type` included
 * (a `.d.ts` carries those), with the packages it names.
 */
function reach(entry: string): { files: string[]; packages: Set<string> } {
  const files: string[] = [];
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    files.push(relative(ROOT, file));
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(
      /(?:import|export)\s[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g,
    )) {
      const spec = m[1] ?? m[2] ?? "";
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
      else
        packages.add(
          spec.startsWith("@")
            ? spec.split("/").slice(0, 2).join("/")
            : (spec.split("/")[0] ?? spec),
        );
    }
  };
  visit(join(ROOT, entry));
  return { files, packages };
}

describe("the published quench/client", () => {
  it("reaches none of the server's modules or packages, types included", () => {
    const { files, packages } = reach("src/client/package.ts");
    expect(files.filter((f) => !f.startsWith("src/client/") && f !== "src/vocabulary.ts")).toEqual(
      [],
    );
    expect([...packages].sort()).toEqual(["eventsource-parser", "viem"]);
  });

  it("the shared vocabulary is a leaf: it imports nothing", () => {
    expect(reach("src/vocabulary.ts").files).toEqual(["src/vocabulary.ts"]);
  });

  it("the API app does not reach the dashboard: the server entry mounts it", () => {
    expect(reach("src/api/app.ts").files.filter((f) => f.startsWith("src/dashboard/"))).toEqual([]);
    expect(reach("src/server.ts").files).toContain("src/dashboard/routes.ts");
  });

  it("the dashboard's browser code reaches only the client and the vocabulary", () => {
    const { files } = reach("src/dashboard/browser/app.ts");
    const outside = files.filter(
      (f) =>
        !f.startsWith("src/dashboard/browser/") &&
        !f.startsWith("src/client/") &&
        f !== "src/vocabulary.ts",
    );
    expect(outside).toEqual([]);
  });
});
