import { Worker } from "node:worker_threads";
import type { QueryOptions, Results } from "@electric-sql/pglite";

/**
 * The embedded database, run on a thread of its own (`pglite-worker.ts`
 * says why). This is the main thread's side: the part of PGlite's interface
 * that drizzle's PGlite driver and the bus use (query, transaction, listen,
 * close), each call a message to the thread and its answer a message back.
 *
 * Contracts and risks:
 * - Rows cross the thread as structured clones: plain values, Dates and
 *   arrays arrive as PGlite made them. Parsers cannot cross (they are
 *   functions); the only ones sent are identity parsers (drizzle keeps its
 *   timestamps as text), which the thread rebuilds from their type ids.
 *   Any other parser, a serializer or a blob is refused, loudly.
 * - A transaction holds PGlite's lock on its thread until `fn` settles here;
 *   other queries wait meanwhile, as on one PGlite instance.
 * - If the thread dies, every call in flight and every later one fails with
 *   code CONNECTION_CLOSED, which the API answers as 503 `unavailable`.
 * - The thread keeps the process alive only while a call is in flight, as a
 *   socket to a database server would.
 */
export interface PgliteThread {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>;
  transaction<T>(fn: (tx: PgliteThreadTransaction) => Promise<T>): Promise<T>;
  /** Calls `callback` with each NOTIFY payload on `channel`; the answer stops that. */
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
  readonly closed: boolean;
}

export interface PgliteThreadTransaction {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>;
}

/** What the main thread asks; `id` pairs each request with its reply. */
export type PgliteRequest =
  | {
      id: number;
      op: "query";
      sql: string;
      params: unknown[];
      rowMode: "array" | "object";
      /** Type ids to hand over as text (identity parsers). */
      rawTypes?: number[];
      tx?: number;
    }
  | { id: number; op: "begin" }
  | { id: number; op: "end"; tx: number; commit: boolean }
  | { id: number; op: "listen"; channel: string }
  | { id: number; op: "unlisten"; channel: string }
  | { id: number; op: "close" };

/** An error as it crosses the thread: its message, name and PGlite's fields (code, detail, …). */
export interface WireError {
  message: string;
  name?: string;
  code?: string;
  [field: string]: unknown;
}

export type PgliteReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: WireError }
  | { op: "notify"; channel: string; payload: string }
  | { op: "ready" }
  | { op: "failed"; error: WireError };

type Request = PgliteRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, "id">
    : never
  : never;

export async function startPgliteThread(dataDir: string | null): Promise<PgliteThread> {
  const worker = spawnWorker(dataDir);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Map<string, Set<(payload: string) => void>>();
  let nextId = 1;
  let stopped: Error | undefined;
  let ready: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const started = new Promise<void>((resolve, reject) => {
    ready = { resolve, reject };
  });

  const stop = (reason: Error) => {
    if (stopped !== undefined) return;
    stopped = reason;
    ready?.reject(reason);
    for (const call of pending.values()) call.reject(reason);
    pending.clear();
  };
  worker.on("message", (message: PgliteReply) => {
    if (!("id" in message)) {
      if (message.op === "notify") {
        for (const callback of listeners.get(message.channel) ?? []) callback(message.payload);
      } else if (message.op === "ready") {
        ready?.resolve();
        worker.unref();
      } else {
        stop(errorFrom(message.error));
      }
      return;
    }
    const call = pending.get(message.id);
    if (call === undefined) return;
    pending.delete(message.id);
    if (pending.size === 0) worker.unref();
    if (message.ok) call.resolve(message.result);
    else call.reject(errorFrom(message.error));
  });
  worker.on("error", (err) => stop(lost(`failed: ${err.message}`, err)));
  worker.on("exit", (code) => stop(lost(`exited with code ${code}`)));

  const call = (request: Request): Promise<unknown> => {
    if (stopped !== undefined) return Promise.reject(stopped);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      if (pending.size === 1) worker.ref();
      worker.postMessage({ ...request, id });
    });
  };

  const query =
    (tx: number | undefined) =>
    async <T>(sql: string, params: unknown[] = [], options: QueryOptions = {}) => {
      const rawTypes = identityParsers(options);
      return (await call({
        op: "query",
        sql,
        params,
        rowMode: options.rowMode ?? "object",
        ...(rawTypes === undefined ? {} : { rawTypes }),
        ...(tx === undefined ? {} : { tx }),
      })) as Results<T>;
    };

  const thread: PgliteThread = {
    query: query(undefined),
    async transaction<T>(fn: (tx: PgliteThreadTransaction) => Promise<T>): Promise<T> {
      const tx = (await call({ op: "begin" })) as number;
      let result: T;
      try {
        result = await fn({ query: query(tx) });
      } catch (err) {
        await call({ op: "end", tx, commit: false }).catch(() => {});
        throw err;
      }
      await call({ op: "end", tx, commit: true });
      return result;
    },
    async listen(channel, callback) {
      let set = listeners.get(channel);
      if (set === undefined) {
        set = new Set();
        listeners.set(channel, set);
        await call({ op: "listen", channel });
      }
      set.add(callback);
      return async () => {
        const current = listeners.get(channel);
        current?.delete(callback);
        if (current?.size === 0) {
          listeners.delete(channel);
          await call({ op: "unlisten", channel });
        }
      };
    },
    async close() {
      if (stopped !== undefined) return;
      await call({ op: "close" }).catch(() => {});
      stop(lost("was closed", undefined, "CONNECTION_ENDED"));
      await worker.terminate();
    },
    get closed() {
      return stopped !== undefined;
    },
  };
  try {
    await started;
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return thread;
}

/**
 * The thread's script. Built (`dist/`), it is the compiled `.js` beside this
 * file; from source (`npm start`, the tests), the thread loads the
 * TypeScript through tsx, the dev dependency `npm start` already runs on.
 */
function spawnWorker(dataDir: string | null): Worker {
  const fromSource = import.meta.url.endsWith(".ts");
  const script = new URL(`./pglite-worker.${fromSource ? "ts" : "js"}`, import.meta.url);
  const options = { workerData: { dataDir } };
  if (!fromSource) return new Worker(script, options);
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(script.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}

/** The type ids of `options.parsers`, each checked to hand its text back unchanged. */
function identityParsers(options: QueryOptions): number[] | undefined {
  if (options.serializers !== undefined || options.blob !== undefined) {
    throw new Error("serializers and blobs cannot cross to the embedded database's thread");
  }
  if (options.parsers === undefined) return undefined;
  const types: number[] = [];
  for (const [type, parse] of Object.entries(options.parsers)) {
    if (parse("\u0000probe", Number(type)) !== "\u0000probe") {
      throw new Error(`the parser for type ${type} is not an identity: it cannot cross threads`);
    }
    types.push(Number(type));
  }
  return types;
}

function errorFrom(wire: WireError): Error {
  const err = new Error(wire.message);
  Object.assign(err, wire);
  return err;
}

function lost(how: string, cause?: Error, code = "CONNECTION_CLOSED"): Error {
  return Object.assign(new Error(`the embedded database's thread ${how}`), {
    code,
    ...(cause === undefined ? {} : { cause }),
  });
}
