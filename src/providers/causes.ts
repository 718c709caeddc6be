/**
 * Why a job or an execution context was cancelled: the value passed to a
 * cancel function, so `ctx.signal.reason` and `cause(ctx)` carry it.
 * Providers read its `code` (a stall, a shutdown, a user's cancel: why a
 * remote cancel was sent) and the runner decides what to record from it. It
 * lives here because providers sit below the runner: the runner imports
 * them, never the other way round.
 */
export type CauseCode = "cancelled" | "shutdown" | "stalled" | "runner_lost";

const COMMITTED: Promise<boolean> = Promise.resolve(true);

export class CancelCause extends Error {
  /**
   * For a user's cancel: whether its transition in the store committed. A
   * cancel aborts a job held here while that transition is still in flight
   * (so sockets close at once); the runner writes nothing about the stop
   * until this settles. Resolved true for causes raised after the fact.
   */
  readonly committed: Promise<boolean>;

  constructor(
    readonly code: CauseCode,
    message: string,
    readonly actor: string | null = null,
    committed: Promise<boolean> = COMMITTED,
  ) {
    // A cause is a reason passed along, not a failure thrown from here: its call
    // stack says nothing. Capturing one costs µs per cancel, and every aborted
    // stream reads `.stack` (Node's destroy does), which formats it: tens of µs.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = "CancelCause";
    this.committed = committed;
    this.stack = `${this.name}: ${message}`;
  }
}

export function isCause(value: unknown, code?: CauseCode): value is CancelCause {
  return value instanceof CancelCause && (code === undefined || value.code === code);
}
