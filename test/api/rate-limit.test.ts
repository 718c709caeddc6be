import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { deleteExpiredRateLimits } from "../../src/db/rate-limits.js";
import { rateLimits } from "../../src/db/schema.js";
import { startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";

describe.each(DRIVERS)("rate limits on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let api: TestApi;
  beforeAll(async () => {
    api = await startApi(
      database,
      { demo: { kind: "demo", tokens_per_second: 1, max_tokens: 1000 } },
      {
        rateLimits: { signIn: 3, submit: 2, cancel: 2 },
      },
    );
  });
  afterAll(() => api?.close());

  async function limited(res: Response) {
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toMatchObject({
      error: { code: "rate_limited", retry_after_s: expect.any(Number) },
    });
  }

  const body = { executions: [{ key: "a", provider: "demo", model: "m" }] };

  it("limits submits per principal, with Retry-After, and not other principals", async () => {
    const one = await api.serviceToken("one", ["jobs:submit", "jobs:read"]);
    const two = await api.serviceToken("two", ["jobs:submit"]);
    expect((await api.call("POST", "/api/v1/jobs", { token: one, body })).status).toBe(201);
    expect((await api.call("POST", "/api/v1/jobs", { token: one, body })).status).toBe(201);
    await limited(await api.call("POST", "/api/v1/jobs", { token: one, body }));
    expect((await api.call("GET", "/api/v1/jobs", { token: one })).status).toBe(200);
    expect((await api.call("POST", "/api/v1/jobs", { token: two, body })).status).toBe(201);
  });

  it("limits cancels per principal", async () => {
    const token = await api.serviceToken("canceller", ["jobs:cancel"]);
    const unknown = "/api/v1/jobs/00000000-0000-4000-8000-000000000000/cancel";
    expect((await api.call("POST", unknown, { token })).status).toBe(404);
    expect(
      (await api.call("POST", "/api/v1/jobs/cancel", { token, body: { job_ids: ["x"] } })).status,
    ).toBe(200);
    await limited(await api.call("POST", unknown, { token }));
  });

  it("limits sign-in attempts per client", async () => {
    for (let i = 0; i < 3; i++)
      expect((await api.call("GET", "/api/v1/auth/nonce")).status).toBe(200);
    await limited(await api.call("GET", "/api/v1/auth/nonce"));
    await limited(
      await api.call("POST", "/api/v1/auth/siwe", { body: { message: "x", signature: "0x" } }),
    );
  });
});

describe.each(DRIVERS)("rate limits shared by instances on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  const limits = { signIn: 2, submit: 2, cancel: 1 };
  const providers = { demo: { kind: "demo", tokens_per_second: 1, max_tokens: 1000 } };
  let a: TestApi;
  let b: TestApi;
  beforeAll(async () => {
    a = await startApi(database, providers, { rateLimits: limits });
    b = await startApi(database, providers, { rateLimits: limits });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it("one principal's submits count once across instances; a flood over the limit writes nothing more", async () => {
    const body = { executions: [{ key: "a", provider: "demo", model: "m" }] };
    // Each app verifies with its own secret, so each signs its own token for the same principal.
    const viaA = await a.serviceToken("shared", ["jobs:submit"]);
    const viaB = await b.serviceToken("shared", ["jobs:submit"]);
    expect((await a.call("POST", "/api/v1/jobs", { token: viaA, body })).status).toBe(201);
    expect((await b.call("POST", "/api/v1/jobs", { token: viaB, body })).status).toBe(201);
    expect((await a.call("POST", "/api/v1/jobs", { token: viaA, body })).status).toBe(429);
    expect((await b.call("POST", "/api/v1/jobs", { token: viaB, body })).status).toBe(429);
    const [row] = await database.db
      .select()
      .from(rateLimits)
      .where(eq(rateLimits.key, "submit:service:shared"));
    expect(row?.points).toBeLessThanOrEqual(4);
    for (let i = 0; i < 20; i++) {
      expect((await a.call("POST", "/api/v1/jobs", { token: viaA, body })).status).toBe(429);
    }
    const [after] = await database.db
      .select()
      .from(rateLimits)
      .where(eq(rateLimits.key, "submit:service:shared"));
    expect(after?.points).toBe(row?.points);
  });

  it("sign-in attempts from one client count once across instances", async () => {
    expect((await a.call("GET", "/api/v1/auth/nonce")).status).toBe(200);
    expect((await b.call("GET", "/api/v1/auth/nonce")).status).toBe(200);
    expect((await a.call("GET", "/api/v1/auth/nonce")).status).toBe(429);
    expect((await b.call("GET", "/api/v1/auth/nonce")).status).toBe(429);
  });

  it("expired counters are swept", async () => {
    await database.db
      .insert(rateLimits)
      .values({ key: "old", points: 3, expire: new Date(Date.now() - 5 * 60_000) });
    expect(await deleteExpiredRateLimits(database.db)).toBeGreaterThanOrEqual(1);
    expect(await database.db.select().from(rateLimits).where(eq(rateLimits.key, "old"))).toEqual(
      [],
    );
  });
});
