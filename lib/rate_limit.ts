/**
 * Rate limits as a port: a memory adapter for one instance (the default) that later features
 * can swap for a shared one (Upstash Redis) without touching the routes.
 */
import type { Clock } from "./clock.ts";

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

/** Counts hits per key against a limit per window. */
export interface RateLimiter {
  hit(key: string): Promise<RateLimitResult>;
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

/**
 * The limiters the HTTP app uses: per client address on the API and (tighter) on
 * `/api/v1/auth/*`, per key on webhooks.
 */
export function createAppLimiters(
  limits: { apiPerMinute: number; authPerMinute: number; webhookPerMinute: number },
  clock: Clock,
): { rateLimiter: RateLimiter; authLimiter: RateLimiter; webhookLimiter: RateLimiter } {
  return {
    rateLimiter: createMemoryRateLimiter({ limit: limits.apiPerMinute, windowMs: 60_000, clock }),
    authLimiter: createMemoryRateLimiter({ limit: limits.authPerMinute, windowMs: 60_000, clock }),
    webhookLimiter: createMemoryRateLimiter({
      limit: limits.webhookPerMinute,
      windowMs: 60_000,
      clock,
    }),
  };
}
