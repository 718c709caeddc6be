import { existsSync, readFileSync } from "node:fs";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/api/app.js";
import { createLogger } from "../../src/logger.js";
import { createMetrics } from "../../src/metrics.js";
import { createTestDatabase } from "../helpers/databases.js";
import { ROOT } from "../helpers/process.js";

interface FlyConfig {
  kill_signal: string;
  kill_timeout: string;
  deploy: { release_command: string };
  env: Record<string, string>;
  processes: Record<string, string>;
  http_service: { internal_port: number; processes: string[]; checks: { path: string }[] };
  checks: Record<string, { port: number; path: string; processes: string[] }>;
  metrics: { port: number; path: string; processes: string[] }[];
}

const fly = parse(readFileSync(`${ROOT}/fly.toml`, "utf8")) as unknown as FlyConfig;
const dockerfile = readFileSync(`${ROOT}/Dockerfile`, "utf8");
const tsBuild = JSON.parse(readFileSync(`${ROOT}/tsconfig.build.json`, "utf8")) as {
  compilerOptions: { rootDir: string; outDir: string };
};

/** `node dist/x.js` runs the compiled src/x.ts: that source must exist. */
function entryPoints(command: string): string[] {
  return [...command.matchAll(/node (dist\/[\w/-]+)\.js/g)].map((m) => m[1] ?? "");
}
function sourceOf(distPath: string): string {
  return `${ROOT}/${distPath.replace(/^dist\//, `${tsBuild.compilerOptions.rootDir}/`)}.ts`;
}

describe("fly.toml and Dockerfile", () => {
  it("stop with SIGTERM and wait longer than SHUTDOWN_GRACE_MS", () => {
    expect(fly.kill_signal).toBe("SIGTERM");
    const killMs = Number.parseInt(fly.kill_timeout, 10) * 1000;
    expect(killMs).toBeGreaterThan(Number(fly.env.SHUTDOWN_GRACE_MS));
  });

  it("run commands that exist: migrations as the release command, the server in each process group", () => {
    expect(tsBuild.compilerOptions.outDir).toBe("dist");
    const commands = [fly.deploy.release_command, ...Object.values(fly.processes)];
    for (const command of commands) {
      const entries = entryPoints(command);
      expect(entries.length, command).toBeGreaterThan(0);
      for (const entry of entries)
        expect(existsSync(sourceOf(entry)), `${command} → ${sourceOf(entry)}`).toBe(true);
    }
    expect(entryPoints(fly.deploy.release_command)).toEqual(["dist/migrate"]);
    expect(fly.processes.web).toContain("ROLE=api");
    expect(fly.processes.worker).toContain("ROLE=runner");
    expect(dockerfile).toMatch(/CMD \["node", "dist\/server\.js"\]/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^USER node$/m);
  });

  it("point the service, checks and metrics at the port and paths the app serves", async () => {
    expect(fly.http_service.internal_port).toBe(Number(fly.env.PORT));
    for (const check of Object.values(fly.checks)) expect(check.port).toBe(Number(fly.env.PORT));
    for (const m of fly.metrics) expect(m.port).toBe(Number(fly.env.PORT));
    const groups = Object.keys(fly.processes);
    for (const group of [
      ...fly.http_service.processes,
      ...fly.metrics.flatMap((m) => m.processes),
    ]) {
      expect(groups).toContain(group);
    }
    const paths = [
      ...fly.http_service.checks.map((c) => c.path),
      ...Object.values(fly.checks).map((c) => c.path),
      ...fly.metrics.map((m) => m.path),
    ];
    const t = await createTestDatabase("pglite");
    try {
      // A worker (ROLE=runner) has no jobs API but must still answer these.
      const app = createApp({
        database: t.database,
        logger: createLogger({ level: "silent", instance: "fly" }),
        metrics: createMetrics({ runningJobs: () => 0, defaults: false }),
        instance: "fly",
        role: "runner",
        runningJobs: () => 0,
        isDraining: () => false,
      });
      for (const path of paths) expect((await app.request(path)).status, path).toBe(200);
    } finally {
      await t.drop();
    }
  });
});
