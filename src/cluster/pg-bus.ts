import postgres from "postgres";
import type { Database } from "../db/connection.js";
import type { Logger } from "../logger.js";
import type { StopAck } from "../runner/stop-acks.js";

/** Channels: a cancel for the holder, a stop acknowledgement for whoever asked, new work for idle runners. */
const CANCEL = "quench_cancel";
const STOPPED = "quench_stopped";
const NEW_WORK = "quench_jobs";

export interface BusHandlers {
  /**
   * Another instance cancelled `jobId` in the store (the notification is sent
   * only after that commit, so the holder may abort at once); abort it if held here.
   */
  onCancel(jobId: string, by: { actor: string | null; reason: string | null }): void;
  /** The holder of `jobId` reports every execution stopped. */
  onStopped(jobId: string, ack: StopAck): void;
  onNewWork(): void;
  /**
   * Called on every (re)listen: notifications sent while the connection was
   * down are lost (postgres.js re-LISTENs but drops the gap), so rescan.
   */
  onListen(): void;
}

/**
 * LISTEN/NOTIFY between the instances sharing one Postgres. A lost
 * notification costs latency, never correctness: every runner also re-checks
 * its held jobs every CANCEL_POLL_MS, and rescans on every (re)listen.
 */
export interface ClusterBus {
  publishCancel(jobId: string, by?: { actor: string | null; reason: string | null }): Promise<void>;
  publishStopped(jobId: string, ack: StopAck): Promise<void>;
  publishNewWork(): Promise<void>;
  start(handlers: BusHandlers): Promise<void>;
  close(): Promise<void>;
}

export interface BusOptions {
  database: Database;
  /** postgres://… of the server; undefined on PGlite. */
  databaseUrl: string | undefined;
  instance: string;
  logger: Logger;
  /** False: publishes nothing and listens to nothing (the status poll does the work). */
  enabled?: boolean;
}

export function createClusterBus(options: BusOptions): ClusterBus {
  const log = options.logger.child({ component: "bus" });
  if (options.enabled === false) {
    log.info("LISTEN/NOTIFY off: cancels reach other instances by the status poll");
    return {
      publishCancel: async () => {},
      publishStopped: async () => {},
      publishNewWork: async () => {},
      start: async (handlers) => handlers.onListen(),
      close: async () => {},
    };
  }
  // A connection of its own, named so operators (and tests) can find it.
  const client =
    options.databaseUrl === undefined
      ? undefined
      : postgres(options.databaseUrl, {
          max: 1,
          onnotice: () => {},
          connection: { application_name: `quench-bus:${options.instance}`.slice(0, 63) },
        });
  const pglite = options.database.pglite;
  const unlisten: (() => Promise<void>)[] = [];

  const notify = async (channel: string, payload: string) => {
    try {
      if (client !== undefined) await client`select pg_notify(${channel}, ${payload})`;
      else await pglite?.query("select pg_notify($1, $2)", [channel, payload]);
    } catch (err) {
      log.warn({ err, channel }, "notify failed; the status poll will catch up");
    }
  };

  const listen = async (
    channel: string,
    onPayload: (payload: string) => void,
    onListen?: () => void,
  ) => {
    if (client !== undefined) {
      const { unlisten: stop } = await client.listen(channel, onPayload, onListen);
      unlisten.push(stop);
    } else if (pglite !== undefined) {
      const stop = await pglite.listen(channel, onPayload);
      unlisten.push(stop);
      onListen?.();
    }
  };

  return {
    publishCancel: (jobId, by) =>
      notify(
        CANCEL,
        JSON.stringify({ job_id: jobId, actor: by?.actor ?? null, reason: by?.reason ?? null }),
      ),
    publishStopped: (jobId, ack) =>
      notify(
        STOPPED,
        JSON.stringify({
          job_id: jobId,
          stopped_at: ack.stoppedAt?.toISOString() ?? null,
          context_aborted: ack.contextAborted,
        }),
      ),
    publishNewWork: () => notify(NEW_WORK, ""),
    async start(handlers) {
      await listen(
        CANCEL,
        (payload) => {
          try {
            const m = JSON.parse(payload) as {
              job_id: string;
              actor: string | null;
              reason: string | null;
            };
            handlers.onCancel(m.job_id, { actor: m.actor, reason: m.reason });
          } catch {
            log.warn({ payload: payload.slice(0, 200) }, "unreadable cancel notification");
          }
        },
        () => {
          log.info("listening for cancels");
          handlers.onListen();
        },
      );
      await listen(STOPPED, (payload) => {
        try {
          const ack = JSON.parse(payload) as {
            job_id: string;
            stopped_at: string | null;
            context_aborted: boolean;
          };
          handlers.onStopped(ack.job_id, {
            stoppedAt: ack.stopped_at === null ? null : new Date(ack.stopped_at),
            contextAborted: ack.context_aborted,
          });
        } catch {
          log.warn({ payload: payload.slice(0, 200) }, "unreadable stop acknowledgement");
        }
      });
      await listen(NEW_WORK, () => handlers.onNewWork());
    },
    async close() {
      for (const stop of unlisten.splice(0)) await stop().catch(() => {});
      await client?.end({ timeout: 2 });
    },
  };
}
