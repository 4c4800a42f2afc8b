/**
 * Rate limits as a port: a memory adapter for one instance (the default), and shared limits
 * over Upstash Redis (`rate_limit_upstash.ts`) when it is configured, without touching the routes.
 */
import type { Clock } from "./clock.ts";
import type { Logger } from "./log.ts";
import {
  createFailover,
  createFallbackRateLimiter,
  createUpstashRateLimiter,
  createUpstashRedis,
  type UpstashConfig,
} from "./rate_limit_upstash.ts";

/** The verdict on one request. */
export interface RateLimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Epoch ms when the window resets. */
  resetAt: number;
  /** Seconds until a retry can succeed (0 when allowed). */
  retryAfterS: number;
}

/** Where a shared limiter's answers come from: Redis, or this instance during an outage. */
export type RateLimitMode = "shared" | "local";

/** Counts hits per key against a limit per window. */
export interface RateLimiter {
  hit(key: string): Promise<RateLimitResult>;
  /** Set on shared limiters only: whether Redis or the local fallback answers right now. */
  mode?(): RateLimitMode;
}

/** Options of {@linkcode createMemoryRateLimiter}. */
export interface MemoryRateLimiterOptions {
  limit: number;
  windowMs: number;
  clock: Clock;
  /** Keys kept at most; the oldest windows are evicted first (bounds memory under an address flood). */
  maxKeys?: number;
}

/**
 * A sliding-window limiter in memory: the previous window's count is weighted by how much of it
 * still overlaps the sliding window, so a burst at a window edge cannot double the limit.
 */
export function createMemoryRateLimiter(options: MemoryRateLimiterOptions): RateLimiter {
  const { limit, windowMs, clock } = options;
  const maxKeys = options.maxKeys ?? 100_000;
  const windows = new Map<string, { start: number; count: number; previous: number }>();
  return {
    hit(key) {
      const now = clock.now();
      const start = now - (now % windowMs);
      let w = windows.get(key);
      if (!w || w.start !== start) {
        const previous = w && w.start === start - windowMs ? w.count : 0;
        w = { start, count: 0, previous };
        windows.delete(key);
        if (windows.size >= maxKeys) windows.delete(windows.keys().next().value!);
        windows.set(key, w);
      }
      const overlap = 1 - (now - start) / windowMs;
      const used = w.previous * overlap + w.count;
      const resetAt = start + windowMs;
      if (used + 1 > limit) {
        return Promise.resolve({
          allowed: false,
          limit,
          remaining: 0,
          resetAt,
          retryAfterS: Math.max(1, Math.ceil((resetAt - now) / 1000)),
        });
      }
      w.count++;
      return Promise.resolve({
        allowed: true,
        limit,
        remaining: Math.max(0, Math.floor(limit - used - 1)),
        resetAt,
        retryAfterS: 0,
      });
    },
  };
}

/** Shared limits over Upstash Redis, for {@linkcode createAppLimiters}. */
export interface SharedLimitsOptions {
  upstash: UpstashConfig;
  /** Where outages and recoveries of Redis are logged. */
  log: Logger;
  /** Prefix of every Redis key (default `trendedge:rl`); each limiter adds its own name. */
  prefix?: string;
  /** How long one check may wait for Redis before the local counts answer (default 500 ms). */
  timeoutMs?: number;
  /** How long to stay local after a failure before trying Redis again (default 5 s). */
  retryMs?: number;
}

/** The limiters of the HTTP app. */
export interface AppLimiters {
  rateLimiter: RateLimiter;
  authLimiter: RateLimiter;
  webhookLimiter: RateLimiter;
}

/**
 * The limiters the HTTP app uses: per client address on the API and (tighter) on
 * `/api/v1/auth/*`, per key on webhooks. In memory, or with `shared` through Upstash Redis:
 * every instance then draws on one budget, and while Redis fails each instance falls back to
 * its own memory counts (one warning per outage, one line when Redis answers again).
 */
export function createAppLimiters(
  limits: { apiPerMinute: number; authPerMinute: number; webhookPerMinute: number },
  clock: Clock,
  options: { shared?: SharedLimitsOptions } = {},
): AppLimiters {
  const memory = (limit: number) => createMemoryRateLimiter({ limit, windowMs: 60_000, clock });
  const local: AppLimiters = {
    rateLimiter: memory(limits.apiPerMinute),
    authLimiter: memory(limits.authPerMinute),
    webhookLimiter: memory(limits.webhookPerMinute),
  };
  const shared = options.shared;
  if (!shared) return local;
  const redis = createUpstashRedis(shared.upstash, { timeoutMs: shared.timeoutMs });
  const failover = createFailover({
    log: shared.log,
    clock,
    timeoutMs: shared.timeoutMs,
    retryMs: shared.retryMs,
  });
  const prefix = shared.prefix ?? "trendedge:rl";
  const fallback = (name: string, limit: number, here: RateLimiter) =>
    createFallbackRateLimiter(
      createUpstashRateLimiter(redis, { limit, prefix: `${prefix}:${name}` }),
      here,
      failover,
    );
  return {
    rateLimiter: fallback("api", limits.apiPerMinute, local.rateLimiter),
    authLimiter: fallback("auth", limits.authPerMinute, local.authLimiter),
    webhookLimiter: fallback("webhook", limits.webhookPerMinute, local.webhookLimiter),
  };
}
