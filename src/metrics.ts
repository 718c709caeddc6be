import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * The Prometheus series of SPEC.md section 3 (`GET /metrics`), on a registry
 * of this instance's own (no global state: tests build as many as they like).
 */
export interface Metrics {
  registry: Registry;
  jobsSubmitted: Counter;
  jobsFinished: Counter<"status">;
  cancelRequests: Counter<"outcome">;
  cancelToStop: Histogram;
  providerCalls: Histogram<"provider" | "outcome">;
  inflightExecutions: Gauge;
  remoteStops: Counter<"provider" | "outcome">;
  remoteStopSeconds: Histogram<"provider">;
  gpuSeconds: Counter<"provider" | "outcome">;
  webhookDeliveries: Counter<"outcome">;
  gpuNotReleased: Counter<"provider">;
}

export function createMetrics(options: {
  runningJobs: () => number;
  /** Webhook events still to deliver, read at scrape time (the gauge is absent without it). */
  webhookBacklog?: () => Promise<number>;
  defaults?: boolean;
}): Metrics {
  const registry = new Registry();
  if (options.defaults ?? true) collectDefaultMetrics({ register: registry, prefix: "quench_" });
  const runningJobs = options.runningJobs;
  new Gauge({
    name: "quench_running_jobs",
    help: "Jobs this instance's runner holds right now.",
    registers: [registry],
    collect() {
      this.set(runningJobs());
    },
  });
  const backlog = options.webhookBacklog;
  if (backlog !== undefined) {
    new Gauge({
      name: "quench_webhook_backlog",
      help: "Webhook events not yet delivered (pending, retries included), across the cluster.",
      registers: [registry],
      async collect() {
        this.set(await backlog().catch(() => Number.NaN));
      },
    });
  }
  return {
    registry,
    jobsSubmitted: new Counter({
      name: "quench_jobs_submitted_total",
      help: "Jobs accepted by POST /jobs.",
      registers: [registry],
    }),
    jobsFinished: new Counter({
      name: "quench_jobs_finished_total",
      help: "Jobs that reached a terminal status, by status.",
      labelNames: ["status"],
      registers: [registry],
    }),
    cancelRequests: new Counter({
      name: "quench_cancel_requests_total",
      help: "Cancel requests, by outcome (cancelled, not_found, not_cancellable, forbidden, …).",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    cancelToStop: new Histogram({
      name: "quench_cancel_to_stop_seconds",
      help: "From a job's cancel to every execution stopped (sockets closed, processes gone).",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    providerCalls: new Histogram({
      name: "quench_provider_request_duration_seconds",
      help: "One execution's call to its provider (retries included), by provider and outcome.",
      labelNames: ["provider", "outcome"],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
      registers: [registry],
    }),
    inflightExecutions: new Gauge({
      name: "quench_inflight_executions",
      help: "Executions calling their provider right now on this instance.",
      registers: [registry],
    }),
    remoteStops: new Counter({
      name: "quench_remote_stops_total",
      help: "Remote-queue stops by provider and outcome (confirmed, requested, already_finished, failed: the GPU may still be running).",
      labelNames: ["provider", "outcome"],
      registers: [registry],
    }),
    gpuSeconds: new Counter({
      name: "quench_gpu_seconds_total",
      help: "GPU time executions used (provider-billed where reported, else wall clock), by provider and outcome.",
      labelNames: ["provider", "outcome"],
      registers: [registry],
    }),
    remoteStopSeconds: new Histogram({
      name: "quench_remote_stop_seconds",
      help: "From the provider's cancel call to its status showing the remote work ended.",
      labelNames: ["provider"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    gpuNotReleased: new Counter({
      name: "quench_gpu_not_released_total",
      help: "gpu_check executions whose GPU memory was still held when the wait for its release ended.",
      labelNames: ["provider"],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: "quench_webhook_deliveries_total",
      help: "Webhook delivery attempts by outcome (delivered, retry, gave_up after 24 h, gone: the receiver answered 410).",
      labelNames: ["outcome"],
      registers: [registry],
    }),
  };
}
