import {
  background,
  type CancelCauseFunc,
  childCount,
  withCancel,
  withCancelCause,
  withTimeout,
} from "../src/context/context.js";
import { type Stats, summarize } from "./stats.js";

const CHILDREN = 10;
const TREES_PER_BATCH = 2_000;
const BATCHES = 60;
const WARMUP_BATCHES = 10;

/** One job context with ten execution contexts, created and then cancelled from the root. */
function jobTree(readSignals: boolean, withDeadline: boolean): void {
  const [root, cancel] = withDeadline
    ? withTimeout(background(), 60_000)
    : withCancelCause(background());
  if (readSignals) root.signal.addEventListener("abort", noop);
  for (let i = 0; i < CHILDREN; i++) {
    const [child] = withCancel(root);
    if (readSignals) child.signal.addEventListener("abort", noop);
  }
  (cancel as CancelCauseFunc)("bench");
}

/**
 * The floor: eleven AbortControllers wired by hand, each listened to; one
 * listener on the root fans the abort out to the ten children.
 */
function bareControllers(): void {
  const root = new AbortController();
  root.signal.addEventListener("abort", noop);
  const children: AbortController[] = [];
  for (let i = 0; i < CHILDREN; i++) {
    const child = new AbortController();
    child.signal.addEventListener("abort", noop);
    children.push(child);
  }
  root.signal.addEventListener(
    "abort",
    () => {
      for (const child of children) child.abort(root.signal.reason);
    },
    { once: true },
  );
  root.abort("bench");
}

function noop(): void {}

/** µs per call of `fn`, one sample per batch of TREES_PER_BATCH calls. */
function timePerCall(fn: () => void): Stats {
  for (let b = 0; b < WARMUP_BATCHES; b++) for (let i = 0; i < TREES_PER_BATCH; i++) fn();
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < TREES_PER_BATCH; i++) fn();
    const ns = Number(process.hrtime.bigint() - start);
    samples.push(ns / TREES_PER_BATCH / 1_000);
  }
  return summarize(samples);
}

export interface HeapResult {
  cycles: number;
  beforeMb: number;
  afterMb: number;
  growthMb: number;
  rootChildrenAfter: number;
}

/** A million children created and released under one long-lived root: the heap must stay flat. */
export function heapAfterReleases(cycles = 1_000_000): HeapResult {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with node --expose-gc");
  const [root, cancelRoot] = withCancel(background());
  const settle = () => {
    for (let i = 0; i < 3; i++) gc();
    return process.memoryUsage().heapUsed / 1024 / 1024;
  };
  const beforeMb = settle();
  for (let i = 0; i < cycles; i++) {
    const [child, cancel] = withCancel(root);
    child.signal.addEventListener("abort", noop);
    cancel();
  }
  const afterMb = settle();
  const rootChildrenAfter = childCount(root);
  cancelRoot();
  return { cycles, beforeMb, afterMb, growthMb: afterMb - beforeMb, rootChildrenAfter };
}

export function contextBench() {
  return {
    bare: timePerCall(bareControllers),
    lazy: timePerCall(() => jobTree(false, false)),
    signals: timePerCall(() => jobTree(true, false)),
    deadlineSignals: timePerCall(() => jobTree(true, true)),
    heap: heapAfterReleases(),
  };
}
