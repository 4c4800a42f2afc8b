/**
 * Shared rate limits: counts kept in Upstash Redis (`@upstash/ratelimit`, sliding window), so
 * every instance of the app draws on one budget per client. Redis is never allowed to take the
 * API down: each check is bounded by a timeout, and while Redis fails or is slow the limiters
 * answer from this instance's own memory counts, then go back to Redis once it answers again.
 */
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";
import type { Clock } from "./clock.ts";
import type { Logger } from "./log.ts";
import type { RateLimiter, RateLimitMode, RateLimitResult } from "./rate_limit.ts";

/** Where the shared counts live: an Upstash Redis REST endpoint and its token. */
export interface UpstashConfig {
  url: string;
  token: string;
}

/** How long one shared check may take before the local counts answer instead. */
export const DEFAULT_SHARED_TIMEOUT_MS = 500;
/** How long the limiters stay local after a failure before they try Redis again. */
export const DEFAULT_SHARED_RETRY_MS = 5_000;

/**
 * A REST client for the shared limiters: every HTTP request is aborted after `timeoutMs`, there
 * are no retries (a retry would only outlast the timeout) and no telemetry headers.
 */
export function createUpstashRedis(
  config: UpstashConfig,
  options: { timeoutMs?: number } = {},
): Redis {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SHARED_TIMEOUT_MS;
  return new Redis({
    url: config.url,
    token: config.token,
    retry: false,
    enableTelemetry: false,
    // A function, so each request gets its own deadline (and an aborted one throws).
    signal: () => AbortSignal.timeout(timeoutMs),
  });
}

/** Options of {@linkcode createUpstashRateLimiter}. */
export interface UpstashRateLimiterOptions {
  limit: number;
  /** The sliding window, in seconds (default 60). */
  windowS?: number;
  /** Prefix of every Redis key of this limiter, e.g. `trendedge:rl:api`. */
  prefix: string;
}

/**
 * A sliding-window limiter whose counts live in Redis, shared by every instance that uses the
 * same prefix. It rejects when Redis fails; wrap it in {@linkcode createFallbackRateLimiter}.
 *
 * `@upstash/ratelimit` reads the system time and keeps an ephemeral cache of the keys it has
 * refused, answering them without a Redis call until their window resets (a flood from one
 * client costs no Redis commands); `retryAfterS` is computed against the same system time.
 */
export function createUpstashRateLimiter(
  redis: Redis,
  options: UpstashRateLimiterOptions,
): RateLimiter {
  const ratelimit = new Ratelimit({
    redis,
    limiter: Ratelimit.slidingWindow(options.limit, `${options.windowS ?? 60} s`),
    prefix: options.prefix,
    analytics: false,
    // Our own timeout decides; the library's would silently allow the request instead.
    timeout: 0,
  });
  return {
    async hit(key) {
      const { success, limit, remaining, reset, reason } = await ratelimit.limit(key);
      if (reason === "timeout") {
        throw new Error(`Cannot check the rate limit for "${options.prefix}": Redis timed out`);
      }
      return toResult({ success, limit, remaining, reset }, Date.now());
    },
  };
}

/** Maps `@upstash/ratelimit`'s answer to a {@linkcode RateLimitResult} at time `now`. */
export function toResult(
  upstash: { success: boolean; limit: number; remaining: number; reset: number },
  now: number,
): RateLimitResult {
  return {
    allowed: upstash.success,
    limit: upstash.limit,
    remaining: Math.max(0, upstash.remaining),
    resetAt: upstash.reset,
    retryAfterS: upstash.success ? 0 : Math.max(1, Math.ceil((upstash.reset - now) / 1000)),
  };
}

/** Options of {@linkcode createFailover}. */
export interface FailoverOptions {
  log: Logger;
  /** Schedules the retries after an outage. */
  clock: Clock;
  /** How long one shared check may take (default {@linkcode DEFAULT_SHARED_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** How long to answer locally before trying Redis again (default {@linkcode DEFAULT_SHARED_RETRY_MS}). */
  retryMs?: number;
}

/**
 * The health of the shared store, common to every limiter over it: one warning when it starts
 * failing, one line when it answers again, however many requests and limiters saw it.
 */
export interface Failover {
  /** `"shared"` while Redis answers, `"local"` during an outage. */
  mode(): RateLimitMode;
  /**
   * Runs `attempt` against the shared store within the timeout; resolves undefined when the
   * store failed, timed out, or is in an outage and not due for a retry yet.
   */
  attempt<T>(attempt: () => Promise<T>): Promise<T | undefined>;
}

/** Creates the outage tracker that {@linkcode createFallbackRateLimiter}s share. */
export function createFailover(options: FailoverOptions): Failover {
  const { log, clock } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_SHARED_TIMEOUT_MS;
  const retryMs = options.retryMs ?? DEFAULT_SHARED_RETRY_MS;
  let mode: RateLimitMode = "shared";
  let retryAt = 0;
  let downSince = 0;
  let probing = false;
  return {
    mode: () => mode,
    async attempt(attempt) {
      let probe = false;
      if (mode === "local") {
        // During an outage one request at a time, once per retryMs, finds out whether it is over.
        if (probing || clock.now() < retryAt) return undefined;
        probing = probe = true;
      }
      try {
        const value = await withTimeout(attempt(), timeoutMs);
        if (mode === "local") {
          mode = "shared";
          log.info("Rate limits are shared again: Redis answers", {
            outage_ms: clock.now() - downSince,
          });
        }
        return value;
      } catch (e) {
        retryAt = clock.now() + retryMs;
        if (mode === "shared") {
          mode = "local";
          downSince = clock.now();
          log.warning("Rate limits fall back to this instance's counts: Redis does not answer", {
            error: briefError(e),
            timeout_ms: timeoutMs,
            retry_ms: retryMs,
          });
        }
        return undefined;
      } finally {
        if (probe) probing = false;
      }
    },
  };
}

/**
 * A limiter that answers from `shared` while it works and from `local` otherwise. `local` sees
 * every hit, so an outage starts from this instance's recent counts rather than from zero.
 */
export function createFallbackRateLimiter(
  shared: RateLimiter,
  local: RateLimiter,
  failover: Failover,
): RateLimiter & { mode(): RateLimitMode } {
  return {
    mode: () => failover.mode(),
    async hit(key) {
      const [here, everywhere] = await Promise.all([
        local.hit(key),
        failover.attempt(() => shared.hit(key)),
      ]);
      return everywhere ?? here;
    },
  };
}

/** Rejects when `promise` takes longer than `ms`; the timer never outlives the race. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Cannot reach Redis: no answer within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The error for a log line: `@upstash/redis` appends the whole command (a Lua script) to it. */
function briefError(e: unknown): { name: string; message: string } {
  const error = e instanceof Error ? e : new Error(String(e));
  const message = error.message.replace(/, command was: [\s\S]*$/, "");
  return {
    name: error.name,
    message: message.length > 300 ? `${message.slice(0, 300)}…` : message,
  };
}
