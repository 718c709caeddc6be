import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PgliteThread, startPgliteThread } from "../../src/db/pglite-thread.js";
import { isDatabaseUnavailable } from "../../src/db/unavailable.js";

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error("expected a rejection");
}

describe("the embedded database on its own thread", () => {
  let db: PgliteThread;
  beforeAll(async () => {
    db = await startPgliteThread(null);
    await db.query("create table t (id int primary key, note text)");
  });
  afterAll(() => db.close());

  it("keeps the event loop running while a long query runs", async () => {
    // About a second of work for the database; on the main thread no timer could fire meanwhile.
    const started = performance.now();
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now() - started), 10);
    try {
      const result = await db.query<{ n: number }>(
        "select count(*)::int as n from generate_series(1, 4000000) g where g % 7 = 0",
      );
      const took = performance.now() - started;
      expect(result.rows).toEqual([{ n: 571428 }]);
      expect(took, "the query must take long enough to show a stall").toBeGreaterThan(100);
      expect(ticks.filter((t) => t < took - 20).length).toBeGreaterThan(3);
    } finally {
      clearInterval(timer);
    }
  });

  it("answers rows, fields and affected rows as PGlite does, timestamps as Dates or as text", async () => {
    const inserted = await db.query("insert into t values (1, 'one'), (2, 'two')");
    expect(inserted.affectedRows).toBe(2);
    const arrays = await db.query("select id, note from t order by id", [], { rowMode: "array" });
    expect(arrays.rows).toEqual([
      [1, "one"],
      [2, "two"],
    ]);
    expect(arrays.fields.map((f) => f.name)).toEqual(["id", "note"]);
    const at = "2026-01-02 03:04:05.678+00";
    const parsed = await db.query<{ at: Date }>("select $1::timestamptz as at", [at]);
    expect(parsed.rows[0]?.at).toEqual(new Date("2026-01-02T03:04:05.678Z"));
    const raw = await db.query<{ at: string }>("select $1::timestamptz as at", [at], {
      parsers: { 1184: (value: string) => value },
    });
    expect(raw.rows[0]?.at).toBe(at);
  });

  it("refuses a parser that is not an identity instead of silently dropping it", async () => {
    const err = await rejection(
      db.query("select 1 as n", [], { parsers: { 23: (value: string) => Number(value) * 2 } }),
    );
    expect(err.message).toMatch(/not an identity/);
  });

  it("carries the SQLSTATE and details of a failed query", async () => {
    const err = await rejection(db.query("insert into t values (1, 'again')"));
    expect(err.code).toBe("23505");
    expect((err as { constraint?: string }).constraint).toBe("t_pkey");
    expect((await rejection(db.query("select 1/0"))).code).toBe("22012");
  });

  it("commits a transaction, rolls back one that throws, and keeps other queries out until it ends", async () => {
    const order: string[] = [];
    let seen: Promise<number | undefined> = Promise.resolve(undefined);
    await db.transaction(async (tx) => {
      await tx.query("insert into t values (10, 'in a transaction')");
      seen = db.query<{ n: number }>("select count(*)::int as n from t where id = 10").then((r) => {
        order.push("outside answered");
        return r.rows[0]?.n;
      });
      // Sent after the outside query: the thread has it queued by the time this answers.
      await tx.query("select pg_sleep(0.05)");
      order.push("committing");
    });
    expect(await seen).toBe(1);
    expect(order).toEqual(["committing", "outside answered"]);

    const thrown = new Error("changed my mind");
    const err = await rejection(
      db.transaction(async (tx) => {
        await tx.query("insert into t values (11, 'rolled back')");
        throw thrown;
      }),
    );
    expect(err).toBe(thrown);
    const failed = await rejection(
      db.transaction(async (tx) => {
        await tx.query("insert into t values (12, 'rolled back')");
        await tx.query("insert into t values (12, 'duplicate')");
      }),
    );
    expect(failed.code).toBe("23505");
    const left = await db.query<{ id: number }>("select id from t where id > 10 order by id");
    expect(left.rows).toEqual([]);
  });

  it("delivers notifications to each listener until it stops listening", async () => {
    const got: string[] = [];
    const also: string[] = [];
    const stop = await db.listen("quench_test", (p) => got.push(p));
    const stopAlso = await db.listen("quench_test", (p) => also.push(p));
    await db.query("select pg_notify('quench_test', 'first')");
    await expect.poll(() => got, { timeout: 5_000 }).toEqual(["first"]);
    await stop();
    await db.query("select pg_notify('quench_test', 'second')");
    await expect.poll(() => also, { timeout: 5_000 }).toEqual(["first", "second"]);
    expect(got).toEqual(["first"]);
    await stopAlso();
  });

  it("answers calls after close with an unavailable database, not a hang", async () => {
    const other = await startPgliteThread(null);
    await other.close();
    expect(other.closed).toBe(true);
    const err = await rejection(other.query("select 1"));
    expect(err.code).toBe("CONNECTION_ENDED");
    expect(isDatabaseUnavailable(err)).toBe(true);
  });
});
