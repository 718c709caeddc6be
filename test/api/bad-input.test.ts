import { sql } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { listEvents } from "../../src/db/events.js";
import { startApi, type TestApi } from "../helpers/api.js";
import { DRIVERS, useTestDatabase } from "../helpers/databases.js";
import { withDeadline } from "../helpers/process.js";

const RUNS = 400;

/** Rows of every table a request could change (nonces excepted: issuing one is its purpose). */
async function snapshot(database: Database): Promise<string> {
  const counts = await database.db.execute(sql`
    select (select count(*) from jobs)::int as jobs,
           (select count(*) from executions)::int as executions,
           (select count(*) from job_events)::int as events,
           (select count(*) from idempotency_keys)::int as keys,
           (select coalesce(string_agg(status, ',' order by id), '') from jobs) as statuses`);
  const rows = Array.isArray(counts) ? counts : (counts as { rows: unknown[] }).rows;
  return JSON.stringify(rows);
}

const printable = fc.string({
  unit: fc.constantFrom(..."abcXYZ019-_.~%/?&=:;,+ !'\"{}[]\\".split("")),
  maxLength: 40,
});
const anyText = fc.string({ unit: "binary", maxLength: 200 });

describe.each(DRIVERS)("arbitrary input on %s", (driver) => {
  let database: Database;
  useTestDatabase(driver, (fresh) => {
    database = fresh.database;
  });
  let api: TestApi;
  let admin: string;
  let existing: string;
  beforeAll(async () => {
    api = await startApi(database, {
      demo: { kind: "demo", tokens_per_second: 1, max_tokens: 1_000 },
    });
    admin = await api.serviceToken("fuzz", ["jobs:admin"]);
    const res = await api.call("POST", "/api/v1/jobs", {
      token: admin,
      body: { executions: [{ key: "a", provider: "demo", model: "m" }] },
    });
    existing = ((await res.json()) as { id: string }).id;
    // Wait until the runner has written all it will for a while (its stream is slow), so
    // that any change seen during the fuzzing is a request's.
    await withDeadline(
      (async () => {
        for (;;) {
          // execution_started is the runner's last write before the slow stream (it
          // follows the status change), so after it the runner writes nothing for a while.
          const events = await listEvents(database.db, existing);
          if (events.some((e) => e.type === "execution_started")) return;
          await new Promise((r) => setTimeout(r, 10));
        }
      })(),
      10_000,
      "the seed job never started",
    );
  });
  afterAll(() => api?.close());

  it(`no request, however malformed, gets a 500, an answer without the error shape, or a change (${RUNS} runs)`, async () => {
    const id = fc.oneof(fc.uuid(), printable, fc.constant(existing), fc.constant("%E0%A4%A"));
    const route = fc.oneof(
      fc.record({ method: fc.constant("POST"), path: fc.constant("/api/v1/jobs") }),
      fc.record({ method: fc.constant("POST"), path: fc.constant("/api/v1/jobs/cancel") }),
      fc.record({ method: fc.constant("POST"), path: fc.constant("/api/v1/auth/siwe") }),
      fc.record({
        method: fc.constantFrom("GET", "DELETE", "PUT"),
        path: fc.constant("/api/v1/jobs"),
      }),
      id.map((i) => ({ method: "GET", path: `/api/v1/jobs/${i}` })),
      id.map((i) => ({ method: "GET", path: `/api/v1/jobs/${i}/events` })),
      id.map((i) => ({ method: "POST", path: `/api/v1/jobs/${i}/cancel` })),
      printable.map((p) => ({ method: "GET", path: `/api/v1/${p}` })),
    );
    const body = fc.oneof(
      fc.constant(undefined),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      anyText,
      fc
        .record({
          executions: fc.array(fc.dictionary(printable, fc.jsonValue()), { maxLength: 3 }),
        })
        .map((v) => JSON.stringify(v)),
      fc
        .record({
          job_ids: fc.array(fc.oneof(fc.uuid(), anyText), { maxLength: 5 }),
          reason: fc.option(anyText),
        })
        .map((v) => JSON.stringify(v)),
      fc.record({ reason: anyText }).map((v) => JSON.stringify(v)),
      fc.record({ message: anyText, signature: anyText }).map((v) => JSON.stringify(v)),
    );
    const headers = fc.record(
      {
        "content-type": fc.constantFrom(
          "application/json",
          "text/plain",
          "application/json; charset=utf-8",
          "multipart/form-data",
          "",
        ),
        "idempotency-key": printable,
        "x-request-id": printable,
      },
      { requiredKeys: [] },
    );
    const token = fc.oneof(fc.constant(undefined), fc.constant("admin"), printable);
    const query = fc.dictionary(
      fc.constantFrom("status", "limit", "cursor", "owner", "x"),
      printable,
      { maxKeys: 3 },
    );

    await fc.assert(
      fc.asyncProperty(route, body, headers, token, query, async (r, b, h, t, q) => {
        const before = await snapshot(database);
        const qs = new URLSearchParams(q).toString();
        const path = `${r.path}${qs ? `?${qs}` : ""}`;
        const res = await api.call(r.method, path, {
          token: t === "admin" ? admin : t,
          headers: h,
          ...(b === undefined || r.method === "GET" ? {} : { body: b }),
        });
        expect(res.status, `${r.method} ${path}`).toBeLessThan(500);
        if (res.status >= 400) {
          const json = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
          expect(typeof json.error?.code).toBe("string");
          expect(typeof json.error?.message).toBe("string");
          expect(await snapshot(database), `${r.method} ${path} changed the database`).toBe(before);
        } else {
          await res.body?.cancel();
        }
      }),
      { numRuns: RUNS },
    );
  });
});
