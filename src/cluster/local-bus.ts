import type { ClusterBus } from "./pg-bus.js";

/**
 * The bus of an instance that shares its database with no other instance
 * (a benchmark, an in-process test): nothing to tell, nothing to hear.
 * `published` lists the jobs whose cancel it was asked to send elsewhere.
 */
export function createLocalBus(): ClusterBus & { published: string[] } {
  const published: string[] = [];
  return {
    published,
    publishCancel: async (jobId) => {
      published.push(jobId);
    },
    publishStopped: async () => {},
    publishNewWork: async () => {},
    start: async () => {},
    close: async () => {},
  };
}
