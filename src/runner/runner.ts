import { background, childCount, withCancelCause } from "../context/context.js";
import { claimJobs, jobStatuses, renewLeases } from "../db/job-transitions.js";
import type { CancelBus } from "./bus.js";
import { type CancelService, createCancelService } from "./cancel.js";
import { CancelCause } from "./causes.js";
import type { RunnerEnv } from "./execute.js";
import type { JobContextManager } from "./job-context-manager.js";
import { runJob } from "./run-job.js";
import type { StopAcks } from "./stop-acks.js";

export interface RunnerDeps extends RunnerEnv {
  manager: JobContextManager;
  acks: StopAcks;
  bus: CancelBus;
}

export interface RunnerOptions {
  /** Jobs held at once (RUNNER_CONCURRENCY). */
  concurrency: number;
  /** A held job's lease (LEASE_MS); renewed every third of it. */
  leaseMs: number;
  /** How long a cancel waits for the stop acknowledgement (CANCEL_ACK_MS). */
  cancelAckMs: number;
  /** The claim poll when no notification of new work comes. */
  claimPollMs?: number;
  /** Claims of one job before an internal failure fails it (MAX_ATTEMPTS). */
  maxAttempts?: number;
  /** How often held jobs' statuses are re-checked (CANCEL_POLL_MS): the fallback for a lost notification. */
  cancelPollMs?: number;
}

export interface Runner {
  start(): void;
  /** New work was submitted: claim now rather than at the next poll. */
  notifyNewWork(): void;
  /** The service function the HTTP API calls (SPEC.md section 3, cancel). */
  cancelJob: CancelService;
  /**
   * Stops claiming, gives running jobs `graceMs` to finish, then aborts the
   * rest with cause `shutdown` (they are requeued) and resolves once every
   * job has settled.
   */
  stop(graceMs: number): Promise<void>;
  activeJobs(): number;
  /**
   * Re-reads the statuses of these held jobs (one query) and aborts those
   * cancelled in the store, or taken over by another instance.
   */
  checkHeld(jobIds: string[]): Promise<void>;
  /**
   * The owner of a job this runner holds, from its claim: lets a cancel be
   * authorized without a database read before the abort. Undefined if not held.
   */
  heldOwner(jobId: string): string | undefined;
  /** Job contexts still linked under the runner's root (0 when idle: a leak shows here). */
  liveContexts(): number;
}

/** A wake-up that is never lost: a notify before the wait makes the next wait return at once. */
function createWakeup() {
  let pending = false;
  let wake: (() => void) | undefined;
  return {
    notify() {
      pending = true;
      wake?.();
    },
    wait(ms: number): Promise<void> {
      if (pending) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wake = undefined;
          pending = false;
          resolve();
        }
        wake = done;
      });
    },
  };
}

export function createRunner(deps: RunnerDeps, options: RunnerOptions): Runner {
  const [root, cancelRoot] = withCancelCause(background());
  const active = new Map<string, Promise<void>>();
  const owners = new Map<string, string>();
  // Per held job, the monotonic time (ms) until which its lease surely holds:
  // the send time of the claim or renewal that set it, plus LEASE_MS. The
  // store's expiry is later than that, so fencing at this time stops our work
  // before another instance can be handed the job.
  const leaseHeldUntil = new Map<string, number>();
  const heartbeatMs = Math.max(50, Math.floor(options.leaseMs / 3));
  const wakeup = createWakeup();
  const log = deps.logger.child({ component: "runner" });
  const claimPollMs = options.claimPollMs ?? 1_000;
  let stopping = false;
  // False once a claim found fewer jobs than it asked for: the queue is drained,
  // so a freed slot need not query again before new work is announced or the poll.
  let mayHaveMore = true;
  let loop: Promise<void> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;

  const cancelJob = createCancelService({
    db: deps.db,
    manager: deps.manager,
    bus: deps.bus,
    acks: deps.acks,
    ackMs: options.cancelAckMs,
  });

  async function claimLoop(): Promise<void> {
    while (!stopping) {
      const free = options.concurrency - active.size;
      let claimed = 0;
      if (free > 0) {
        try {
          const sent = performance.now();
          const jobs = await claimJobs(deps.db, {
            instance: deps.instance,
            limit: free,
            leaseMs: options.leaseMs,
          });
          claimed = jobs.length;
          mayHaveMore = claimed === free;
          for (const job of jobs) {
            owners.set(job.id, job.owner);
            leaseHeldUntil.set(job.id, sent + options.leaseMs);
            const run = runJob(
              { ...deps, root, maxAttempts: options.maxAttempts ?? 3 },
              job,
            ).finally(() => {
              active.delete(job.id);
              owners.delete(job.id);
              leaseHeldUntil.delete(job.id);
              if (mayHaveMore) wakeup.notify(); // a slot is free and work may be waiting
            });
            active.set(job.id, run);
          }
        } catch (err) {
          log.error({ err }, "claiming jobs failed; retrying at the next poll");
        }
      }
      // A full batch may mean more is queued; otherwise sleep until woken.
      if (claimed > 0 && claimed === free) continue;
      await wakeup.wait(claimPollMs);
    }
  }

  async function checkHeld(jobIds: string[]): Promise<void> {
    const held = jobIds.filter((id) => deps.manager.isRunning(id));
    if (held.length === 0) return;
    try {
      for (const job of await jobStatuses(deps.db, held)) {
        // A job may have ended since it was listed: only a context still held is aborted
        // (cancelling an unregistered id would leave a remembered cancel behind).
        if (!deps.manager.isRunning(job.id)) continue;
        if (job.status === "cancelled") {
          deps.manager.cancel(
            job.id,
            new CancelCause("cancelled", job.cancelReason ?? "cancelled", job.cancelledBy),
          );
        } else if (
          job.status === "queued" ||
          (job.status === "running" && job.instance !== deps.instance)
        ) {
          deps.manager.cancel(
            job.id,
            new CancelCause("runner_lost", "the job's lease passed to another instance"),
          );
        }
      }
    } catch (err) {
      log.error({ err }, "checking held jobs failed");
    }
  }

  /**
   * Self-fencing: a job whose lease this instance could not renew in time
   * (the database is unreachable from here, or too slow) may already be
   * another instance's, so its work stops here. Checked on every heartbeat,
   * before and independently of a renewal that may hang; a lease within half
   * a heartbeat of lapsing counts as lapsed, so the fence lands by the lapse
   * and not a heartbeat after it. Healthy renewals keep two thirds of
   * LEASE_MS in hand, and one failed renewal is tolerated.
   */
  function fenceLapsedLeases(): void {
    const now = performance.now();
    for (const [id, until] of leaseHeldUntil) {
      if (until - heartbeatMs / 2 > now || !deps.manager.isRunning(id)) continue;
      leaseHeldUntil.delete(id);
      deps.manager.cancel(
        id,
        new CancelCause("runner_lost", "this instance could not renew the job's lease in time"),
      );
    }
  }

  /** One UPDATE renews every held lease; a held job not renewed has left `running` here. */
  async function renew(): Promise<void> {
    fenceLapsedLeases();
    const held = deps.manager.jobIds();
    if (held.length === 0) return;
    try {
      const sent = performance.now();
      const { running, stopping } = await renewLeases(deps.db, {
        instance: deps.instance,
        jobIds: held,
        leaseMs: options.leaseMs,
      });
      for (const id of [...running, ...stopping]) {
        if (leaseHeldUntil.has(id)) leaseHeldUntil.set(id, sent + options.leaseMs);
      }
      const renewed = new Set(running);
      await checkHeld(held.filter((id) => !renewed.has(id)));
    } catch (err) {
      log.error({ err }, "lease renewal failed");
    }
  }

  return {
    start() {
      if (loop !== undefined) return;
      loop = claimLoop();
      heartbeat = setInterval(() => void renew(), heartbeatMs);
      const pollMs = options.cancelPollMs ?? 2_000;
      poll = setInterval(() => void checkHeld(deps.manager.jobIds()), Math.max(20, pollMs));
    },
    notifyNewWork: () => {
      mayHaveMore = true;
      wakeup.notify();
    },
    cancelJob,
    activeJobs: () => active.size,
    heldOwner: (jobId) => owners.get(jobId),
    checkHeld,
    liveContexts: () => childCount(root),
    async stop(graceMs) {
      stopping = true;
      wakeup.notify();
      await loop;
      const all = Promise.allSettled([...active.values()]);
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), graceMs);
      });
      if ((await Promise.race([all, graceOver])) === "timeout") {
        const aborted = deps.manager.cancelAll(
          new CancelCause("shutdown", "the instance is shutting down"),
        );
        log.info({ aborted }, "grace period over: aborting running jobs for requeue");
        await all;
      }
      clearTimeout(timer);
      clearInterval(heartbeat);
      clearInterval(poll);
      cancelRoot(new CancelCause("shutdown", "runner stopped"));
    },
  };
}
