import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The dashboard's script, bundled for browsers by esbuild from
 * browser/app.ts (a checkout) or its compiled browser/app.js (dist/, the
 * Docker image), once per process, on first request. The bundle carries the
 * same quench/client the CLI uses.
 */
export function dashboardScript(options: { minify: boolean }): () => Promise<string> {
  let built: Promise<string> | undefined;
  return () => {
    built ??= bundle(options.minify).catch((err: unknown) => {
      built = undefined; // let the next request try again
      throw err;
    });
    return built;
  };
}

async function bundle(minify: boolean): Promise<string> {
  const ts = fileURLToPath(new URL("./browser/app.ts", import.meta.url));
  const entry = existsSync(ts) ? ts : fileURLToPath(new URL("./browser/app.js", import.meta.url));
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify,
    legalComments: "none",
    logLevel: "silent",
  });
  const file = result.outputFiles[0];
  if (file === undefined) throw new Error("esbuild produced no dashboard bundle");
  return file.text;
}
