import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import { RateLimiterDrizzle, RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Db } from "../db/connection.js";
import { rateLimits } from "../db/schema.js";
import type { ApiEnv } from "./env.js";
import { ApiError } from "./errors.js";

/**
 * A per-key limit of `perMinute` requests (0 turns it off). Over it: 429
 * `rate_limited` with `Retry-After`. With `shared`, the counters live in the
 * database, so every instance draws on one budget; a key over its limit is
 * then refused from memory until its window ends (a flood costs no writes),
 * and if the database fails, each instance falls back to counting in memory.
 * Without it, each instance counts its own share.
 */
export function rateLimit(options: {
  perMinute: number;
  what: string;
  keyOf: (c: Context<ApiEnv>) => string;
  applies?: (c: Context<ApiEnv>) => boolean;
  shared?: Db;
}): MiddlewareHandler<ApiEnv> {
  const { perMinute, what, keyOf, applies = () => true } = options;
  const memory = () => new RateLimiterMemory({ points: perMinute, duration: 60 });
  const limiter =
    perMinute <= 0
      ? undefined
      : options.shared === undefined
        ? memory()
        : new RateLimiterDrizzle({
            storeClient: options.shared,
            schema: rateLimits,
            keyPrefix: what,
            points: perMinute,
            duration: 60,
            inMemoryBlockOnConsumed: perMinute + 1,
            insuranceLimiter: memory(),
            // Expired rows are deleted by the instance's maintenance loop, not a timer per limiter.
            clearExpiredByTimeout: false,
          });
  return async function rateLimited(c, next) {
    if (limiter !== undefined && applies(c)) {
      try {
        await limiter.consume(keyOf(c));
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        const retryAfterS = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
        c.header("Retry-After", String(retryAfterS));
        throw new ApiError("rate_limited", `too many ${what} requests; retry in ${retryAfterS} s`, {
          retry_after_s: retryAfterS,
        });
      }
    }
    await next();
  };
}

/**
 * The client's address: fly.io's `Fly-Client-IP` when running there (its
 * proxy sets it), else the socket's. Elsewhere the header is ignored: anyone
 * could send it to dodge a limit.
 */
export function clientAddress(c: Context, trustFlyClientIp: boolean): string {
  const fly = c.req.header("fly-client-ip");
  if (trustFlyClientIp && fly) return fly;
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown"; // requests made in process (tests) have no socket
  }
}
