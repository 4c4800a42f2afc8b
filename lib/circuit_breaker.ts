/**
 * The circuit breaker of one broker account: after `failureThreshold` consecutive failures
 * within `windowMs` it opens for `cooldownMs`, refusing every request (the caller rejects the
 * signal loudly rather than holding it); then one probe decides whether it closes again or
 * stays open for another cooldown.
 */
import { z } from "zod";
import type { Clock } from "./clock.ts";

/** Where the breaker stands. `half_open`: the cooldown has passed and a probe may go. */
export type CircuitState = "closed" | "open" | "half_open";

/** Options of {@linkcode CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Consecutive failures within `windowMs` that open the breaker. Default 3. */
  failureThreshold?: number;
  /** How far back failures count. Default 5 minutes. */
  windowMs?: number;
  /** How long the breaker stays open before a probe. Default 10 minutes. */
  cooldownMs?: number;
  /**
   * How long a probe may stay outstanding before another is let through, so a probe whose
   * result was never recorded cannot wedge the breaker. Default 1 minute.
   */
  probeTimeoutMs?: number;
  clock: Clock;
}

/** The answer of {@linkcode CircuitBreaker.tryAcquire}. */
export type AcquireResult =
  | { allowed: true; probe: boolean }
  | { allowed: false; retryAt: number };

/** The schema of a {@linkcode CircuitBreakerSnapshot}, to validate what comes back from KV. */
export const CircuitBreakerSnapshotSchema = z.strictObject({
  /** Epoch ms of the consecutive failures that still count. */
  failures: z.array(z.number().int().nonnegative()),
  /** Epoch ms at which an open breaker may probe; null while closed. */
  openUntil: z.number().int().nonnegative().nullable(),
});

/** The plain, JSON-serializable state of a breaker, persisted so a restart keeps it open. */
export type CircuitBreakerSnapshot = z.infer<typeof CircuitBreakerSnapshotSchema>;

/**
 * A circuit breaker driven by an injected clock. Results that arrive while the breaker is open
 * (calls made before it opened) change nothing; once the cooldown has passed, the next result
 * recorded decides.
 *
 * @example
 * const breaker = new CircuitBreaker({ clock: systemClock });
 * const permit = breaker.tryAcquire();
 * if (!permit.allowed) throw new BreakerOpenError(permit.retryAt);
 * try {
 *   await broker.placeOrder(order);
 *   if (breaker.recordSuccess() === "closed") notifyOperator("breaker closed");
 * } catch (e) {
 *   if (breaker.recordFailure() === "opened") notifyOperator("breaker opened");
 *   throw e;
 * }
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #windowMs: number;
  readonly #cooldownMs: number;
  readonly #probeTimeoutMs: number;
  readonly #clock: Clock;
  #failures: number[] = [];
  #openUntil: number | null = null;
  #probeStartedAt: number | null = null;

  constructor(options: CircuitBreakerOptions) {
    this.#threshold = positiveInt("failureThreshold", options.failureThreshold ?? 3);
    this.#windowMs = positiveInt("windowMs", options.windowMs ?? 300_000);
    this.#cooldownMs = positiveInt("cooldownMs", options.cooldownMs ?? 600_000);
    this.#probeTimeoutMs = positiveInt("probeTimeoutMs", options.probeTimeoutMs ?? 60_000);
    this.#clock = options.clock;
  }

  /**
   * A breaker in the state of `snapshot`. A probe outstanding when it was taken is forgotten:
   * it died with the process, so the next caller after the cooldown probes again.
   */
  static restore(snapshot: CircuitBreakerSnapshot, options: CircuitBreakerOptions): CircuitBreaker {
    const parsed = CircuitBreakerSnapshotSchema.safeParse(snapshot);
    if (!parsed.success) {
      throw new TypeError(`Cannot restore circuit breaker: ${z.prettifyError(parsed.error)}`);
    }
    const breaker = new CircuitBreaker(options);
    breaker.#failures = [...parsed.data.failures];
    breaker.#openUntil = parsed.data.openUntil;
    return breaker;
  }

  /** The state now, by the clock: an open breaker turns half-open when its cooldown ends. */
  get state(): CircuitState {
    if (this.#openUntil === null) return "closed";
    return this.#clock.now() < this.#openUntil ? "open" : "half_open";
  }

  /**
   * Asks to make a request. Closed: allowed. Open: refused until `retryAt`. Half-open: the
   * first caller is allowed as the probe, others are refused while it is outstanding.
   */
  tryAcquire(): AcquireResult {
    const now = this.#clock.now();
    const state = this.state;
    if (state === "closed") return { allowed: true, probe: false };
    if (state === "open") return { allowed: false, retryAt: this.#openUntil! };
    if (this.#probeStartedAt !== null && now - this.#probeStartedAt < this.#probeTimeoutMs) {
      return { allowed: false, retryAt: this.#probeStartedAt + this.#probeTimeoutMs };
    }
    this.#probeStartedAt = now;
    return { allowed: true, probe: true };
  }

  /** Records a successful request; returns `"closed"` when this closes the breaker. */
  recordSuccess(): "closed" | undefined {
    const state = this.state;
    if (state === "open") return undefined;
    this.#failures = [];
    if (state === "closed") return undefined;
    this.#openUntil = null;
    this.#probeStartedAt = null;
    return "closed";
  }

  /** Records a failed request; returns `"opened"` when this opens (or re-opens) the breaker. */
  recordFailure(): "opened" | undefined {
    const now = this.#clock.now();
    const state = this.state;
    if (state === "open") return undefined;
    if (state === "closed") {
      this.#failures = this.#failures.filter((at) => now - at < this.#windowMs);
      this.#failures.push(now);
      if (this.#failures.length < this.#threshold) return undefined;
    }
    this.#failures = [];
    this.#openUntil = now + this.#cooldownMs;
    this.#probeStartedAt = null;
    return "opened";
  }

  /** The state to persist; feed it to {@linkcode CircuitBreaker.restore}. */
  snapshot(): CircuitBreakerSnapshot {
    return { failures: [...this.#failures], openUntil: this.#openUntil };
  }
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Cannot create circuit breaker: "${name}" must be a positive integer`);
  }
  return value;
}
