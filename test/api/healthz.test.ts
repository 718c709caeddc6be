import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/api/app.js";
import { createLogger } from "../../src/logger.js";
import { createTestDatabase, DRIVERS, type TestDatabase } from "../helpers/databases.js";

describe.each(DRIVERS)("GET /healthz on %s", (driver) => {
  let t: TestDatabase;
  let draining = false;
  beforeAll(async () => {
    t = await createTestDatabase(driver);
  });
  afterAll(() => t?.drop());

  const app = () =>
    createApp({
      database: t.database,
      logger: createLogger({ level: "silent", instance: "i-1" }),
      instance: "i-1",
      role: "all",
      runningJobs: () => 3,
      isDraining: () => draining,
    });

  it("answers 200 with the database, instance, role and running jobs", async () => {
    const res = await app().request("/healthz");
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
    draining = true;
    try {
      const res = await app().request("/healthz");
      expect(res.status).toBe(503);
      expect(res.headers.get("connection")).toBe("close");
      expect(await res.json()).toMatchObject({
        status: "draining",
        db: "ok",
        error: { code: "unavailable", message: "instance is draining" },
      });
    } finally {
      draining = false;
    }
  });

  it("answers 503 when the database is unreachable", async () => {
    const other = await createTestDatabase(driver);
    await other.drop();
    const res = await createApp({
      database: other.database,
      logger: createLogger({ level: "silent", instance: "i-1" }),
      instance: "i-1",
      role: "api",
      runningJobs: () => 0,
      isDraining: () => false,
    }).request("/healthz");
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      status: "unavailable",
      db: "error",
      role: "api",
      error: { code: "unavailable", message: "database is unreachable" },
    });
  });
});
