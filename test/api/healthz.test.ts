import { describe, expect, it } from "vitest";
import { type AppDeps, createApp } from "../../src/api/app.js";
import type { Database } from "../../src/db/connection.js";
import { createLogger } from "../../src/logger.js";
import { createMetrics } from "../../src/metrics.js";
import { createTestDatabase, DRIVERS, useTestDatabase } from "../helpers/databases.js";

function appWith(database: Database, overrides: Partial<AppDeps> = {}) {
  return createApp({
    database,
    logger: createLogger({ level: "silent", instance: "i-1" }),
    metrics: createMetrics({ runningJobs: () => 3, defaults: false }),
    instance: "i-1",
    role: "all",
    runningJobs: () => 3,
    isDraining: () => false,
    ...overrides,
  });
}

describe.each(DRIVERS)("GET /healthz on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });

  it("answers 200 with the database, instance, role and running jobs", async () => {
    const res = await appWith(database).request("/healthz");
    expect(res.status).toBe(200);
    expect(res.headers.get("connection")).toBeNull();
    expect(await res.json()).toEqual({
      status: "ok",
      db: "ok",
      instance: "i-1",
      role: "all",
      running_jobs: 3,
    });
  });

  it("answers 503 while draining, and asks clients to close the connection", async () => {
    const res = await appWith(database, { isDraining: () => true }).request("/healthz");
    expect(res.status).toBe(503);
    expect(res.headers.get("connection")).toBe("close");
    expect(await res.json()).toMatchObject({
      status: "draining",
      db: "ok",
      error: { code: "unavailable", message: "instance is draining" },
    });
  });

  it("answers 503 when the database is unreachable", async () => {
    const gone = await createTestDatabase(driver);
    await gone.drop();
    const res = await appWith(gone.database, { role: "api" }).request("/healthz");
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      status: "unavailable",
      db: "error",
      role: "api",
      error: { code: "unavailable", message: "database is unreachable" },
    });
  });
});

describe("GET /openapi.json", () => {
  it("describes every route of SPEC section 3 with resolvable refs, from the validating schemas", async () => {
    const t = await createTestDatabase("pglite");
    try {
      const res = await appWith(t.database).request("/openapi.json");
      expect(res.status).toBe(200);
      const doc = (await res.json()) as {
        openapi: string;
        paths: Record<string, Record<string, unknown>>;
        components: { schemas: Record<string, { required?: string[] }> };
      };
      expect(doc.openapi).toBe("3.1.0");
      expect(Object.keys(doc.paths).sort()).toEqual(
        [
          "/api/v1/auth/nonce",
          "/api/v1/auth/siwe",
          "/api/v1/jobs",
          "/api/v1/jobs/{id}",
          "/api/v1/jobs/{id}/cancel",
          "/api/v1/jobs/cancel",
          "/api/v1/jobs/{id}/stream",
          "/api/v1/jobs/{id}/events",
          "/api/v1/jobs/{id}/resume",
          "/api/v1/webhooks",
          "/api/v1/webhooks/{id}",
          "/api/v1/webhooks/{id}/deliveries",
          "/",
          "/healthz",
          "/metrics",
          "/openapi.json",
        ].sort(),
      );
      const refs = [...JSON.stringify(doc).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map(
        (m) => m[1] ?? "",
      );
      expect(refs.filter((r) => !(r in doc.components.schemas))).toEqual([]);
      expect(doc.components.schemas.SubmitRequest?.required).toContain("executions");
      const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
        Object.entries(methods).map(([method, op]) => ({
          path,
          method,
          ...(op as { operationId?: string; security?: unknown[]; responses: object }),
        })),
      );
      const ids = operations.map((o) => o.operationId);
      expect(ids.every((id) => typeof id === "string")).toBe(true);
      expect(new Set(ids).size).toBe(ids.length);
      // Every API operation reads the database, so each can answer 503; the public ones say so.
      for (const op of operations.filter((o) => o.path.startsWith("/api/"))) {
        expect(Object.keys(op.responses), `${op.method} ${op.path}`).toContain("503");
      }
      const open = operations.filter((o) => o.security?.length === 0).map((o) => o.operationId);
      expect(open.sort()).toEqual(
        [
          "getNonce",
          "signInWithEthereum",
          "getHealth",
          "getMetrics",
          "getOpenApiDocument",
          "getDashboard",
        ].sort(),
      );
    } finally {
      await t.drop();
    }
  });
});
