/**
 * The durable queue port: work that must survive a restart or wait (broker retries,
 * notifications, scan jobs) goes through it. Two adapters pass the same contract tests:
 * Deno KV (`queue_kv.ts`, one instance) and PostgreSQL (`queue_pg.ts`, several instances).
 *
 * Delivery is at-least-once, so every handler must be idempotent: a handler that resolves acks
 * its message; one that throws is retried after `backoffMs[attempt - 1]` (±10% jitter); when the
 * last retry fails, the message becomes a dead letter that an operator can replay.
 */

/** A message to enqueue; `payload` must be plain JSON data. */
export interface QueueMessage {
  type: string;
  payload: unknown;
}

/** Options of {@linkcode Queue.enqueue}. */
export interface EnqueueOptions {
  /** Postpones the first delivery by this many milliseconds (default 0). */
  delayMs?: number;
  /** Delay before each retry; its length is the number of retries (default `[1000, 5000, 30000]`). */
  backoffMs?: number[];
}

/** One delivery of a message to its handler. */
export interface Delivery {
  id: string;
  type: string;
  payload: unknown;
  /** 1 for the first delivery, 2 for the first retry, … */
  attempt: number;
}

/** A message that failed every attempt (or that no handler takes). */
export interface DeadLetter {
  id: string;
  type: string;
  payload: unknown;
  attempts: number;
  /** The message of the last error. */
  error: string;
  failedAt: Date;
}

/** Handles one message type; resolving acks the message, throwing schedules a retry. */
export type QueueHandler = (delivery: Delivery) => Promise<void>;

/** Message depths, for health details and metrics. */
export interface QueueDepth {
  /** Messages not yet acknowledged: due, delayed, waiting for a retry or being handled. */
  pending: number;
  deadLetters: number;
}

/** The durable queue every module receives. */
export interface Queue {
  /** Registers the handler for one message type (before or after start). */
  handle(type: string, handler: QueueHandler): void;
  /** Starts delivering. */
  start(): void;
  /** Stores the message durably and returns its id (a UUID). */
  enqueue(message: QueueMessage, options?: EnqueueOptions): Promise<string>;
  /** The most recent dead letters first (default limit 100). */
  deadLetters(limit?: number): Promise<DeadLetter[]>;
  /** Re-enqueues a dead letter with fresh attempts and removes it; false if unknown. */
  replay(id: string): Promise<boolean>;
  depth(): Promise<QueueDepth>;
  /** Stops taking new deliveries and waits (up to timeoutMs) for handlers in flight. */
  close(timeoutMs?: number): Promise<void>;
}

/** Retry delays when a message does not name its own. */
export const DEFAULT_BACKOFF_MS: readonly number[] = [1_000, 5_000, 30_000];
/**
 * The longest delay or backoff step accepted: 20 days, inside both Deno KV's 30-day delay limit
 * and the `integer` column that keeps backoff steps in PostgreSQL.
 */
export const MAX_DELAY_MS = 20 * 24 * 60 * 60 * 1000;
/** The most retries a message may ask for. */
export const MAX_RETRIES = 50;
/** The longest message type accepted. */
export const MAX_TYPE_LENGTH = 200;
/** How long `close()` waits for handlers in flight when no timeout is given. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/** An enqueue request after validation: the payload is a JSON round-trip of the caller's. */
export interface ValidMessage {
  type: string;
  payload: unknown;
  /** The payload as JSON text. */
  json: string;
  delayMs: number;
  backoffMs: number[];
}

/**
 * Checks an enqueue request and normalizes it; throws a `TypeError` naming what is wrong. An
 * adapter passes its own default backoff in `options` when the caller gave none.
 *
 * @example
 * const valid = validateEnqueue({ type: "notify", payload: { userId: "u1" } }, { delayMs: 500 });
 */
export function validateEnqueue(
  message: QueueMessage,
  options: EnqueueOptions = {},
): ValidMessage {
  const type: unknown = message?.type;
  if (typeof type !== "string" || type.length === 0) {
    throw new TypeError("Cannot enqueue a message: type must be a non-empty string");
  }
  if (type.length > MAX_TYPE_LENGTH) {
    throw new TypeError(
      `Cannot enqueue "${
        type.slice(0, 40)
      }…": type is ${type.length} characters, at most ${MAX_TYPE_LENGTH} allowed`,
    );
  }
  const problem = jsonProblem(message.payload);
  if (problem) {
    throw new TypeError(`Cannot enqueue "${type}": payload is not JSON-serializable: ${problem}`);
  }
  const json = JSON.stringify(message.payload);
  const delayMs = options.delayMs ?? 0;
  if (!isDelay(delayMs)) {
    throw new TypeError(
      `Cannot enqueue "${type}": delayMs must be a number from 0 to ${MAX_DELAY_MS}, got ${
        String(delayMs)
      }`,
    );
  }
  const backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
  if (!Array.isArray(backoffMs) || backoffMs.length > MAX_RETRIES || !backoffMs.every(isDelay)) {
    throw new TypeError(
      `Cannot enqueue "${type}": backoffMs must be at most ${MAX_RETRIES} numbers from 0 to ${MAX_DELAY_MS}`,
    );
  }
  return {
    type,
    payload: JSON.parse(json),
    json,
    delayMs,
    backoffMs: backoffMs.map((ms) => Math.round(ms)),
  };
}

function isDelay(ms: unknown): ms is number {
  return typeof ms === "number" && Number.isFinite(ms) && ms >= 0 && ms <= MAX_DELAY_MS;
}

/**
 * Why `value` would not survive a JSON round trip unchanged, or undefined when it would.
 * Object properties that are `undefined` are allowed (JSON drops them, as optional fields).
 */
function jsonProblem(
  value: unknown,
  path = "payload",
  ancestors: object[] = [],
): string | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}`;
    case "undefined":
      return `${path} is undefined`;
    case "bigint":
    case "function":
    case "symbol":
      return `${path} is a ${typeof value}`;
  }
  if (value === null) return undefined;
  const object = value as object;
  if (ancestors.includes(object)) return `${path} is a circular reference`;
  const inner = [...ancestors, object];
  if (Array.isArray(object)) {
    for (let i = 0; i < object.length; i++) {
      const found = jsonProblem(object[i], `${path}[${i}]`, inner);
      if (found) return found;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(object);
  if (proto !== Object.prototype && proto !== null) {
    const name = (object as { constructor?: { name?: string } }).constructor?.name ?? "object";
    return `${path} is a ${name}, not a plain object`;
  }
  for (const [key, child] of Object.entries(object)) {
    if (child === undefined) continue;
    const found = jsonProblem(child, `${path}.${key}`, inner);
    if (found) return found;
  }
  return undefined;
}

/** The number of attempts a message gets: the first delivery plus one per backoff step. */
export function maxAttempts(backoffMs: readonly number[]): number {
  return backoffMs.length + 1;
}

/** `ms` moved by up to ±10%, so that retries of many messages do not arrive in lockstep. */
export function withJitter(ms: number, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (0.9 + random() * 0.2)));
}

/** The text kept in a dead letter for a thrown value. */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.length > 2_000 ? `${text.slice(0, 2_000)}…` : text;
}

/** The error of a message whose type has no handler. */
export function noHandlerError(type: string): string {
  return `No handler for queue message type "${type}"`;
}

/** The error of a message whose last attempt never finished (its worker died or hung). */
export function abandonedError(attempts: number, lastError?: string | null): string {
  const base = `Gave up after ${attempts} attempt${
    attempts === 1 ? "" : "s"
  }: the worker stopped before the last one finished`;
  return lastError ? `${base}; last error: ${lastError}` : base;
}

/** True when `id` looks like a UUID (any version). */
export function isUuid(id: unknown): id is string {
  return typeof id === "string" &&
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);
}

/** Checks a message type passed to `handle`. */
export function validateHandlerType(type: string): void {
  if (typeof type !== "string" || type.length === 0 || type.length > MAX_TYPE_LENGTH) {
    throw new TypeError(
      `Cannot register a queue handler: type must be 1 to ${MAX_TYPE_LENGTH} characters`,
    );
  }
}

/**
 * Waits until every promise in `pending` has settled, or `timeoutMs` has passed; true when they
 * all settled. The timer is cleared either way.
 */
export async function settleWithin(
  pending: Iterable<Promise<unknown>>,
  timeoutMs: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
  });
  try {
    return await Promise.race([Promise.allSettled(pending).then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
