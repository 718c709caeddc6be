import { background, childCount, withCancelCause } from "../context/context.js";
import {
  type ClaimedJob,
  type ClaimRequest,
  claimJobs,
  jobStatuses,
  renewLeases,
  requeueJob,
} from "../db/job-transitions.js";
import { isDatabaseUnavailable, unavailableCode } from "../db/unavailable.js";
import { CancelCause } from "../providers/causes.js";
import { createWakeup } from "../wakeup.js";
import type { CancelBus } from "./bus.js";
import { type CancelService, createCancelService } from "./cancel.js";
import type { RunnerEnv } from "./execute.js";
import { createGpuReleases } from "./gpu-releases.js";
import type { JobContextManager } from "./job-context-manager.js";
import { createRemoteStops } from "./remote-stops.js";
import { runJob } from "./run-job.js";
import type { StopAcks } from "./stop-acks.js";
import { type ClaimedAlong, createWriteBatches, type WriteBatches } from "./write-batches.js";

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
  /** Runs holding a slot (at most RUNNER_CONCURRENCY). */
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

/** How soon a lease renewal that failed on an unreachable database is tried again. */
const RENEW_RETRY_MS = 250;

export function createRunner(runnerDeps: RunnerDeps, options: RunnerOptions): Runner {
  const deps: RunnerDeps & { writes: WriteBatches } = {
    ...runnerDeps,
    remoteStops: runnerDeps.remoteStops ?? createRemoteStops(runnerDeps),
    gpuReleases: runnerDeps.gpuReleases ?? createGpuReleases(runnerDeps),
    writes:
      runnerDeps.writes ??
      createWriteBatches(runnerDeps.db, runnerDeps.instance, {
        take: claimAlong,
        done: claimedAlong,
      }),
  };
  const [root, cancelRoot] = withCancelCause(background());
  const runs = new Set<Promise<void>>();
  /**
   * Held runs whose job a claim-along statement finished: the slot is free in
   * the store (the job is no longer held), the run is only being told so.
   * Slots are counted as `held()`, runs less these.
   */
  const released = new Set<string>();
  const held = () => runs.size - released.size;
  /** The run of each held job; claims exclude these ids (claimJobs' `exclude`). */
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
  // A claim is in flight: the loop's own, or one riding on a batch of finishes
  // (`claimAlong`). One at a time, so the slots each one counts are its own.
  let claiming = false;
  // The claim riding on a batch, until its jobs are started (stop() waits for it).
  let along: Promise<void> | undefined;
  let alongDone = () => {};
  let loop: Promise<void> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  let renewRetry: NodeJS.Timeout | undefined;

  /** A database that is away is an outage to ride out (warn), anything else a bug (error). */
  const failed = (err: unknown, what: string) =>
    isDatabaseUnavailable(err)
      ? log.warn({ code: unavailableCode(err) }, what)
      : log.error({ err }, what);

  const cancelJob = createCancelService({
    db: deps.db,
    manager: deps.manager,
    bus: deps.bus,
    acks: deps.acks,
    endings: deps.endings,
    ackMs: options.cancelAckMs,
  });

  async function claimLoop(): Promise<void> {
    while (!stopping) {
      // Slots count runs, not job ids: a run still stopping holds its slot until
      // it settles, so RUNNER_CONCURRENCY is a hard cap on the work in flight.
      // A run whose job a claim-along finished holds none: its work is done.
      const free = options.concurrency - held();
      let claimed = 0;
      if (free > 0 && !claiming) {
        claiming = true;
        try {
          const sent = performance.now();
          const jobs = await claimJobs(deps.db, {
            instance: deps.instance,
            limit: free,
            leaseMs: options.leaseMs,
            exclude: [...active.keys()],
            startExecutions: true,
          });
          claimed = jobs.length;
          mayHaveMore = claimed === free;
          const proven = await proveLeases(jobs, sent);
          for (const job of jobs) {
            const heldFrom = proven.get(job.id);
            if (heldFrom !== undefined) startRun(job, heldFrom);
          }
        } catch (err) {
          failed(err, "claiming jobs failed; retrying at the next poll");
        } finally {
          claiming = false;
        }
      }
      // A full batch may mean more is queued; otherwise sleep until woken.
      if (claimed > 0 && claimed === free) continue;
      await wakeup.wait(claimPollMs);
    }
  }

  /**
   * A batch of finishes is about to be written: claim in the same statement
   * the slots free now plus those its finished jobs free (`releasing` at
   * most; the statement counts the ones it really finished). Not while
   * another claim is in flight, the runner is stopping, or the queue was
   * found drained.
   */
  function claimAlong(releasing: number): ClaimRequest | undefined {
    if (stopping || claiming || !mayHaveMore) return undefined;
    const free = Math.max(0, options.concurrency - held());
    if (free + releasing === 0) return undefined;
    claiming = true;
    along = new Promise<void>((resolve) => {
      alongDone = resolve;
    });
    return {
      instance: deps.instance,
      limit: free,
      leaseMs: options.leaseMs,
      exclude: [...active.keys()],
      startExecutions: true,
    };
  }

  async function claimedAlong(answer: ClaimedAlong | undefined): Promise<void> {
    try {
      if (answer === undefined) return;
      for (const id of answer.released) if (active.has(id)) released.add(id);
      if (answer.limit === 0) return;
      mayHaveMore = answer.jobs.length === answer.limit;
      const proven = await proveLeases(answer.jobs, answer.sent);
      for (const job of answer.jobs) {
        const heldFrom = proven.get(job.id);
        if (heldFrom !== undefined) startRun(job, heldFrom);
      }
    } finally {
      claiming = false;
      alongDone();
      along = undefined;
      // Slots freed while this claim was in flight are the loop's to fill.
      if (mayHaveMore) wakeup.notify();
    }
  }

  function startRun(job: ClaimedJob, heldFrom: number): void {
    owners.set(job.id, job.owner);
    leaseHeldUntil.set(job.id, heldFrom + options.leaseMs);
    const run: Promise<void> = runJob(
      { ...deps, root, maxAttempts: options.maxAttempts ?? 3, leaseMs: options.leaseMs },
      job,
    ).finally(() => {
      runs.delete(run);
      released.delete(job.id);
      active.delete(job.id);
      owners.delete(job.id);
      leaseHeldUntil.delete(job.id);
      if (mayHaveMore) wakeup.notify(); // a slot is free and work may be waiting
    });
    runs.add(run);
    active.set(job.id, run);
  }

  /**
   * The monotonic time from which each claimed job's lease surely holds, for
   * the jobs that may start. The lease the claim set runs from when the
   * database executed it, which is no earlier than `sent`; after a quick
   * round trip `sent` is close to it. After a slow one (the claim waited for
   * a reconnect) `sent` may be so far back that the lease would count as
   * lapsed at once and self-fencing would abort the fresh run: such leases
   * are proven again by a renewal first. Jobs that cannot be proven are
   * given back without costing an attempt.
   */
  async function proveLeases(jobs: ClaimedJob[], sent: number): Promise<Map<string, number>> {
    const quick = (since: number) => performance.now() - since < heartbeatMs / 2;
    if (jobs.length === 0 || quick(sent)) return new Map(jobs.map((j) => [j.id, sent]));
    const again = performance.now();
    const renewed = await renewLeases(deps.db, {
      instance: deps.instance,
      jobIds: jobs.map((j) => j.id),
      leaseMs: options.leaseMs,
    }).catch(() => undefined);
    const proven = new Map<string, number>();
    if (renewed !== undefined && quick(again))
      for (const id of renewed.running) proven.set(id, again);
    const unproven = jobs.filter((j) => !proven.has(j.id));
    if (unproven.length > 0) {
      log.warn(
        { jobs: unproven.length },
        "a slow claim's leases could not be proven; giving the jobs back",
      );
      for (const job of unproven) {
        await requeueJob(deps.db, job.id, {
          instance: deps.instance,
          cause: "claim_not_proven",
          countAttempt: false,
        }).catch(() => false); // if this fails too, the lease lapses and the reaper forgives the outage
      }
    }
    return proven;
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
      failed(err, "checking held jobs failed");
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
      failed(err, "lease renewal failed");
      // Try again soon rather than a whole heartbeat later: the leases are renewed
      // within RENEW_RETRY_MS of the database coming back, so a second outage
      // soon after the first does not find them already half spent.
      if (!stopping && renewRetry === undefined && isDatabaseUnavailable(err)) {
        renewRetry = setTimeout(
          () => {
            renewRetry = undefined;
            void renew();
          },
          Math.min(RENEW_RETRY_MS, heartbeatMs),
        );
      }
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
    activeJobs: held,
    heldOwner: (jobId) => owners.get(jobId),
    checkHeld,
    liveContexts: () => childCount(root),
    async stop(graceMs) {
      stopping = true;
      wakeup.notify();
      await loop;
      await along;
      const all = Promise.allSettled([...runs]);
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
      clearTimeout(renewRetry);
      cancelRoot(new CancelCause("shutdown", "runner stopped"));
    },
  };
}
