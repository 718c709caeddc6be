import { isTerminalJobStatus } from "../vocabulary.js";
import { errorFromFetch, errorFromResponse, QuenchError } from "./errors.js";
import { sseMessages } from "./sse.js";
import type {
  BulkCancelResponse,
  CancelResponse,
  Health,
  Job,
  JobEvent,
  JobPage,
  JobStatus,
  Session,
  StreamEvent,
  SubmitRequest,
} from "./types.js";

export interface ClientOptions {
  /** The service's origin, e.g. `http://127.0.0.1:8080` (the `/api/v1` base is added). */
  url: string;
  /** A service token or a wallet session token; `signIn*` sets it. */
  token?: string | undefined;
  /** Another fetch (a test's, a proxy's); defaults to the global one. */
  fetch?: typeof fetch;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
}

/**
 * A typed client for every route of SPEC.md section 3, for Node 20 and
 * browsers. Every failure is a QuenchError with a stable code; nothing here
 * retries on its own except `follow`, which reconnects a dropped stream.
 */
export function createClient(options: ClientOptions) {
  const origin = options.url.replace(/\/+$/, "");
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  let token = options.token;

  async function send(
    method: string,
    path: string,
    o: CallOptions & { body?: unknown; headers?: Record<string, string>; auth?: boolean } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json", ...o.headers };
    if (o.auth !== false && token !== undefined) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers["content-type"] = "application/json";
    }
    let res: Response;
    try {
      res = await doFetch(`${origin}${path}`, { method, headers, body, signal: o.signal ?? null });
    } catch (err) {
      throw errorFromFetch(err, o.signal);
    }
    if (!res.ok) throw await errorFromResponse(res);
    return res;
  }

  async function call<T>(
    method: string,
    path: string,
    o: Parameters<typeof send>[2] = {},
  ): Promise<T> {
    const res = await send(method, path, o);
    try {
      return (await res.json()) as T;
    } catch (err) {
      if (o.signal?.aborted) throw errorFromFetch(err, o.signal);
      throw new QuenchError("bad_response", `answer to ${method} ${path} is not JSON`, res.status);
    }
  }

  const jobPath = (id: string) => `/api/v1/jobs/${encodeURIComponent(id)}`;

  async function* stream(id: string, o: CallOptions = {}): AsyncGenerator<StreamEvent> {
    const res = await send("GET", `${jobPath(id)}/stream`, {
      ...o,
      headers: { accept: "text/event-stream" },
    });
    if (res.body === null) throw new QuenchError("bad_response", "the stream has no body");
    try {
      for await (const message of sseMessages(res.body, o.signal)) {
        if (!["job", "execution", "progress", "end"].includes(message.event ?? "")) continue;
        yield { event: message.event, data: JSON.parse(message.data) } as StreamEvent;
      }
    } catch (err) {
      throw errorFromFetch(err, o.signal);
    }
  }

  return {
    get url() {
      return origin;
    },
    get token() {
      return token;
    },
    setToken(next: string | undefined) {
      token = next;
    },

    /** `GET /healthz`; a draining instance or a database outage is an `unavailable` error. */
    health: (o: CallOptions = {}) => call<Health>("GET", "/healthz", { ...o, auth: false }),

    /** `GET /auth/nonce`: a single-use nonce for a SIWE message. */
    nonce: (o: CallOptions = {}) =>
      call<{ nonce: string; expires_at: string }>("GET", "/api/v1/auth/nonce", {
        ...o,
        auth: false,
      }),

    /** `POST /auth/siwe`; on success the session token is used for later calls. */
    async signInWithSiwe(body: { message: string; signature: string }, o: CallOptions = {}) {
      const session = await call<Session>("POST", "/api/v1/auth/siwe", { ...o, body, auth: false });
      token = session.token;
      return session;
    },

    /** `POST /jobs`. With `idempotencyKey`, a repeat returns the first job. */
    submit: (body: SubmitRequest, o: CallOptions & { idempotencyKey?: string } = {}) =>
      call<Job>("POST", "/api/v1/jobs", {
        ...o,
        body,
        headers: o.idempotencyKey === undefined ? {} : { "idempotency-key": o.idempotencyKey },
      }),

    job: (id: string, o: CallOptions = {}) => call<Job>("GET", jobPath(id), o),

    /** One page of `GET /jobs`, newest first. */
    jobs(
      query: { status?: JobStatus; limit?: number; cursor?: string; owner?: string } = {},
      o: CallOptions = {},
    ) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
      const qs = params.size > 0 ? `?${params}` : "";
      return call<JobPage>("GET", `/api/v1/jobs${qs}`, o);
    },

    events: (id: string, o: CallOptions = {}) =>
      call<JobEvent[]>("GET", `${jobPath(id)}/events`, o),

    /** `POST /jobs/:id/cancel`: answers once the runner acknowledged the stop, or CANCEL_ACK_MS passed. */
    cancel: (id: string, o: CallOptions & { reason?: string } = {}) =>
      call<CancelResponse>("POST", `${jobPath(id)}/cancel`, {
        ...o,
        body: o.reason === undefined ? {} : { reason: o.reason },
      }),

    /**
     * `POST /jobs/:id/resume`: a new job that continues a stopped one; its
     * completed executions are carried over (`resumed: true`), the rest run.
     */
    resume: (id: string, o: CallOptions = {}) => call<Job>("POST", `${jobPath(id)}/resume`, o),

    cancelMany: (jobIds: string[], o: CallOptions & { reason?: string } = {}) =>
      call<BulkCancelResponse>("POST", "/api/v1/jobs/cancel", {
        ...o,
        body: { job_ids: jobIds, ...(o.reason === undefined ? {} : { reason: o.reason }) },
      }),

    /**
     * `GET /jobs/:id/stream` as an async iterator: a `job` snapshot first,
     * then changes, and `end` once the job is terminal, after which it ends.
     * Aborting `signal` (or leaving the loop) closes the connection; the
     * iteration then ends without an error.
     */
    stream,

    /**
     * Follows a job to its end and returns its final state. `onEvent` sees
     * every stream event. A stream that drops before `end`, or a server that
     * can't be reached for a while (an instance draining in a deploy, a proxy
     * timeout), is retried `reconnects` times, waiting 0.5 s, 1 s, 2 s, … up
     * to 8 s between tries (about 24 s in all by default).
     */
    async follow(
      id: string,
      o: CallOptions & { onEvent?: (event: StreamEvent) => void; reconnects?: number } = {},
    ): Promise<Job> {
      const reconnects = o.reconnects ?? 6;
      for (let attempt = 0; ; attempt++) {
        try {
          for await (const event of stream(id, o)) {
            o.onEvent?.(event);
            if (event.event === "end") return await call<Job>("GET", jobPath(id), o);
          }
          if (o.signal?.aborted) throw new QuenchError("aborted", "the call was aborted");
          const job = await call<Job>("GET", jobPath(id), o);
          if (isTerminalJobStatus(job.status)) return job;
        } catch (err) {
          if (
            !(err instanceof QuenchError) ||
            err.code !== "network_error" ||
            attempt >= reconnects
          )
            throw err;
        }
        if (attempt >= reconnects) {
          throw new QuenchError("network_error", `the stream of job ${id} kept dropping`);
        }
        await pause(Math.min(500 * 2 ** attempt, 8_000), o.signal);
      }
    },
  };
}

export type QuenchClient = ReturnType<typeof createClient>;

/** Waits `ms`, or rejects with an `aborted` QuenchError as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const aborted = () => {
      clearTimeout(timer);
      reject(new QuenchError("aborted", "the call was aborted"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }, ms);
    if (signal?.aborted) aborted();
    else signal?.addEventListener("abort", aborted, { once: true });
  });
}
