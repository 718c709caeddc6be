#!/usr/bin/env node
// The `quench` command. In a checkout it runs the TypeScript source through
// tsx; an installed build (no src/, as in the Docker image) runs dist/.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
} else {
  await import(new URL("../dist/cli/main.js", import.meta.url).href);
}
