/**
 * The embedded database's own thread. PGlite is Postgres compiled to
 * WebAssembly: a query runs synchronously on the thread that calls it, so on
 * the main thread every query, heartbeat and claim stalled the event loop,
 * and a cancel arriving meanwhile waited for it (issue 15: HTTP cancel →
 * socket closed p99 8 ms on PGlite, 4 ms on a Postgres server). Here the
 * queries run beside the event loop, as a server's do.
 *
 * The protocol (`PgliteRequest` in, `PgliteReply` out) is `pglite-thread.ts`'s;
 * nothing else talks to this thread. A transaction stays open here, holding
 * PGlite's lock, until the main thread ends it: meanwhile other queries wait,
 * exactly as they do on one PGlite instance.
 */
import { parentPort, workerData } from "node:worker_threads";
import { PGlite, type QueryOptions, type Transaction } from "@electric-sql/pglite";
import type { PgliteReply, PgliteRequest, WireError } from "./pglite-thread.js";

const port = parentPort;
if (port === null) throw new Error("pglite-worker runs only as a worker thread");
const { dataDir } = workerData as { dataDir: string | null };

/** An open transaction: its handle, and how the main thread's `end` request (its id) ends it. */
interface OpenTransaction {
  tx: Transaction;
  end: (requestId: number, commit: boolean) => void;
}

const transactions = new Map<number, OpenTransaction>();
const unlisteners = new Map<string, () => Promise<void>>();
let nextTransaction = 1;

const reply = (message: PgliteReply) => port.postMessage(message);

function wireError(err: unknown): WireError {
  if (!(err instanceof Error)) return { message: String(err) };
  // DatabaseError's fields (code, detail, constraint, …) are own properties.
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(err)) {
    if (value === null || ["string", "number", "boolean"].includes(typeof value)) {
      fields[key] = value;
    }
  }
  return { ...fields, message: err.message, name: err.name };
}

/** Identity parsers for the listed types: the only kind the main thread sends (see pglite-thread). */
function queryOptions(rowMode: "array" | "object", rawTypes: number[] | undefined): QueryOptions {
  if (rawTypes === undefined) return { rowMode };
  const parsers: Record<number, (value: string) => string> = {};
  for (const type of rawTypes) parsers[type] = (value) => value;
  return { rowMode, parsers };
}

try {
  const db = dataDir === null ? new PGlite() : new PGlite(dataDir);
  await db.waitReady;

  async function handle(
    request: Exclude<PgliteRequest, { op: "begin" | "end" }>,
  ): Promise<unknown> {
    switch (request.op) {
      case "query": {
        const on = request.tx === undefined ? db : transactions.get(request.tx)?.tx;
        if (on === undefined) throw new Error(`transaction ${request.tx} is not open`);
        const result = await on.query(
          request.sql,
          request.params,
          queryOptions(request.rowMode, request.rawTypes),
        );
        return { rows: result.rows, fields: result.fields, affectedRows: result.affectedRows };
      }
      case "listen": {
        if (!unlisteners.has(request.channel)) {
          const channel = request.channel;
          const stop = await db.listen(channel, (payload) =>
            reply({ op: "notify", channel, payload }),
          );
          unlisteners.set(channel, stop);
        }
        return undefined;
      }
      case "unlisten": {
        const stop = unlisteners.get(request.channel);
        unlisteners.delete(request.channel);
        await stop?.();
        return undefined;
      }
      case "close":
        if (!db.closed) await db.close();
        return undefined;
    }
  }

  /**
   * Opens a transaction and answers `id` with its number once it is open.
   * The `end` request's id is answered with the transaction's outcome: done
   * (committed, or rolled back as asked), or the error that undid it.
   */
  function begin(id: number): void {
    const number = nextTransaction++;
    let opened = false;
    let endId = 0;
    let decide: (commit: boolean) => void = () => {};
    const decided = new Promise<boolean>((resolve) => {
      decide = resolve;
    });
    db.transaction(async (tx) => {
      opened = true;
      transactions.set(number, {
        tx,
        end: (requestId, commit) => {
          endId = requestId;
          decide(commit);
        },
      });
      reply({ id, ok: true, result: number });
      if (!(await decided)) throw new RolledBack();
    })
      .then(
        () => reply({ id: endId, ok: true, result: undefined }),
        (err: unknown) => {
          if (!opened) reply({ id, ok: false, error: wireError(err) });
          else if (err instanceof RolledBack) reply({ id: endId, ok: true, result: undefined });
          else reply({ id: endId, ok: false, error: wireError(err) });
        },
      )
      .finally(() => transactions.delete(number));
  }

  port.on("message", (request: PgliteRequest) => {
    if (request.op === "begin") return begin(request.id);
    if (request.op === "end") {
      const open = transactions.get(request.tx);
      if (open !== undefined) return open.end(request.id, request.commit);
      reply({
        id: request.id,
        ok: false,
        error: { message: `transaction ${request.tx} is not open` },
      });
      return;
    }
    handle(request).then(
      (result) => reply({ id: request.id, ok: true, result }),
      (err: unknown) => reply({ id: request.id, ok: false, error: wireError(err) }),
    );
  });
  reply({ op: "ready" });
} catch (err) {
  reply({ op: "failed", error: wireError(err) });
}

/** Thrown inside a transaction the main thread rolled back, so PGlite issues ROLLBACK. */
class RolledBack extends Error {}
