import type { ExecutionStatus } from "../vocabulary.js";

export interface DagNode {
  key: string;
  status: ExecutionStatus | "starting";
  dependsOn: string[];
}

export interface DagStep {
  /** Pending executions whose dependencies all completed. */
  ready: string[];
  /** Pending executions that can never run, with why. */
  skip: { key: string; code: "dependency_failed" | "invalid_dependency"; message: string }[];
}

const FAILED: ReadonlySet<string> = new Set(["failed", "skipped", "cancelled"]);

/**
 * The next step of a job's DAG: which pending executions may start and which
 * must be skipped because a dependency failed, was skipped or was cancelled
 * (SPEC.md section 2), or names no execution of the job. A dependency cycle
 * shows as pending executions that are neither ready nor skippable while
 * nothing runs: `stuck` returns them.
 */
export function nextStep(nodes: DagNode[]): DagStep {
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  const step: DagStep = { ready: [], skip: [] };
  for (const node of nodes) {
    if (node.status !== "pending") continue;
    const missing = node.dependsOn.find((d) => !byKey.has(d));
    if (missing !== undefined) {
      step.skip.push({
        key: node.key,
        code: "invalid_dependency",
        message: `depends on unknown execution ${missing}`,
      });
      continue;
    }
    const failed = node.dependsOn.find((d) => FAILED.has(byKey.get(d)?.status ?? ""));
    if (failed !== undefined) {
      const status = byKey.get(failed)?.status;
      step.skip.push({
        key: node.key,
        code: "dependency_failed",
        message: `dependency ${failed} ${status}`,
      });
      continue;
    }
    if (node.dependsOn.every((d) => byKey.get(d)?.status === "completed"))
      step.ready.push(node.key);
  }
  return step;
}

/** Pending executions left when nothing can progress: they wait on each other. */
export function stuck(nodes: DagNode[]): string[] {
  return nodes.filter((n) => n.status === "pending").map((n) => n.key);
}
