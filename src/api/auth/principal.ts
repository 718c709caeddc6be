import { ApiError } from "../errors.js";

export const SCOPES = ["jobs:submit", "jobs:read", "jobs:cancel", "jobs:admin"] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * Who is calling. A wallet (signed in with SIWE) owns jobs as its checksummed
 * address and may submit, read and cancel its own; a service owns jobs as
 * `service:<sub>` with the scopes of its token. `jobs:admin` sees and cancels
 * any job and may submit on behalf of a wallet.
 */
export interface Principal {
  kind: "wallet" | "service";
  /** The job owner this principal is: `0xAbC…` or `service:<sub>`. */
  owner: string;
  scopes: ReadonlySet<Scope>;
}

export const isAdmin = (p: Principal) => p.scopes.has("jobs:admin");

/** 403 unless the principal holds `scope` (admin holds every scope). */
export function requireScope(p: Principal, scope: Scope): void {
  if (!p.scopes.has(scope) && !isAdmin(p)) {
    throw new ApiError("forbidden", `this token lacks the ${scope} scope`);
  }
}

/** 403 unless the principal owns the job or is admin. */
export function requireOwnership(p: Principal, job: { id: string; owner: string }): void {
  if (job.owner !== p.owner && !isAdmin(p)) {
    throw new ApiError("forbidden", `job ${job.id} belongs to someone else`);
  }
}

export const WALLET_SCOPES: ReadonlySet<Scope> = new Set<Scope>([
  "jobs:submit",
  "jobs:read",
  "jobs:cancel",
]);
