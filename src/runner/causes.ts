/**
 * Why a job or an execution context was cancelled: the value passed to a
 * cancel function, so `ctx.signal.reason` and `cause(ctx)` carry it. The
 * runner decides what to record from its `code`.
 */
export type CauseCode = "cancelled" | "shutdown" | "stalled" | "runner_lost";

export class CancelCause extends Error {
  constructor(
    readonly code: CauseCode,
    message: string,
    readonly actor: string | null = null,
  ) {
    super(message);
    this.name = "CancelCause";
  }
}

export function isCause(value: unknown, code?: CauseCode): value is CancelCause {
  return value instanceof CancelCause && (code === undefined || value.code === code);
}
