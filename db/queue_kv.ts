/**
 * The durable queue on Deno KV queues: the default for one instance (KV queues do not work over
 * KV Connect nor on the new Deno Deploy; use the PostgreSQL adapter there).
 *
 * Each message lives as two things: an envelope in the KV queue (`{ id, hop, type, payload,
 * attempt, backoffMs }`) and a record under {@linkcode queuePendingKey} that says which envelope
 * ("hop") is current and how many deliveries reached a handler. The single `listenQueue` routes
 * envelopes by `type`; before calling a handler it writes the attempt into the record, so that a
 * delivery after a crash knows it is a retry. A failure is retried by OUR re-enqueue with a delay,
 * committed atomically with the record; the last failure writes the dead letter in the same
 * commit. KV's own `backoffSchedule` and `keysIfUndelivered` are only the safety net for when the
 * process dies or our own commit fails.
 *
 * `depth()` counts the pending records (due, delayed, waiting for a retry or running) and the dead
 * letters. After `close()`, envelopes that KV still delivers (the listener lives until the caller
 * closes the KV) are not handled: each is handed back to KV unchanged, re-enqueued with a 1 s
 * delay, for the next process.
 *
 * Crash behaviour (observed on Deno 2.9, local SQLite): a message whose handler was running when
 * the process died stays "running" inside KV until its deadline (about 5 s after the last
 * keepalive) passes; KV requeues it when a process next opens the file after that deadline, or at
 * its cleanup sweep (every ~60 s) in a process that already has it open — so a process restarted
 * within ~5 s of the crash sees the message again up to a minute later. KV then waits the first
 * step of `redeliveryBackoffMs`. The redelivery reports `attempt` one higher than the interrupted
 * one (read from the record); when that exceeds the message's attempts, it becomes a dead letter
 * without running the handler again.
 */
import { type Clock, systemClock } from "../lib/clock.ts";
import { type Logger, serializeError } from "../lib/log.ts";
import {
  abandonedError,
  type DeadLetter,
  DEFAULT_BACKOFF_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
  type EnqueueOptions,
  errorText,
  isUuid,
  maxAttempts,
  noHandlerError,
  type Queue,
  type QueueDepth,
  type QueueHandler,
  type QueueMessage,
  settleWithin,
  validateEnqueue,
  validateHandlerType,
  withJitter,
} from "./queue.ts";

/** Options of {@linkcode createKvQueue}. */
export interface KvQueueOptions {
  log: Logger;
  /** Retry delays for messages that do not name theirs, and for replayed dead letters. */
  backoffMs?: number[];
  /**
   * KV's own redelivery schedule, used only when the process dies in a handler or our commit
   * fails; when it runs out, KV writes the message to its dead-letter key.
   */
  redeliveryBackoffMs?: number[];
  clock?: Clock;
  /** Source of jitter; `Math.random` unless a test fixes it. */
  random?: () => number;
}

/** Where the record of a message not yet done lives. */
export function queuePendingKey(id: string): Deno.KvKey {
  return ["queue", "pending", id];
}

/** Where the dead letter of a message lives. */
export function queueDeadLetterKey(id: string): Deno.KvKey {
  return ["queue", "dead", id];
}

const PENDING_PREFIX: Deno.KvKey = ["queue", "pending"];
const DEAD_PREFIX: Deno.KvKey = ["queue", "dead"];
const ENVELOPE_KIND = "trendedge.queue.v1";
const DEFAULT_REDELIVERY_BACKOFF_MS = [1_000, 5_000, 30_000, 60_000, 300_000];
/** Delay of a message that arrived after close(), handed back to KV for the next process. */
const AFTER_CLOSE_DELAY_MS = 1_000;
const COMMIT_TRIES = 5;

/** The value enqueued in KV. */
interface Envelope {
  kind: typeof ENVELOPE_KIND;
  id: string;
  /** Which enqueue of this message it is; a stale copy (another hop) is dropped. */
  hop: string;
  type: string;
  payload: unknown;
  attempt: number;
  backoffMs: number[];
}

/** The value under `queuePendingKey(id)`. */
interface PendingRecord {
  hop: string;
  /** The highest attempt handed to a handler so far. */
  delivered: number;
  /** The error of the last failed attempt, if any. */
  lastError?: string;
}

/** The value under `queueDeadLetterKey(id)` (KV itself may write an `Envelope` there instead). */
interface DeadRecord {
  id: string;
  type: string;
  payload: unknown;
  attempts: number;
  error: string;
  failedAt: number;
}

/** Queues whose KV already has a `listenQueue`: KV allows one listener per database. */
const listening = new WeakSet<Deno.Kv>();

/**
 * Creates the Deno KV adapter of the durable queue. The caller owns `kv`: close the queue first
 * (it waits for handlers in flight), then `kv.close()`, which ends the listener.
 *
 * @example
 * const queue = createKvQueue(kv, { log });
 * queue.handle("notify", async ({ payload }) => await send(payload));
 * queue.start();
 * await queue.enqueue({ type: "notify", payload: { userId: "u1" } }, { delayMs: 1000 });
 */
export function createKvQueue(kv: Deno.Kv, options: KvQueueOptions): Queue {
  return new KvQueue(kv, options);
}

class KvQueue implements Queue {
  #kv: Deno.Kv;
  #log: Logger;
  #backoffMs: number[];
  #redeliveryBackoffMs: number[];
  #clock: Clock;
  #random: () => number;
  #handlers = new Map<string, QueueHandler>();
  #inflight = new Set<Promise<void>>();
  #started = false;
  #closed = false;

  constructor(kv: Deno.Kv, options: KvQueueOptions) {
    this.#kv = kv;
    this.#log = options.log;
    this.#backoffMs = [...(options.backoffMs ?? DEFAULT_BACKOFF_MS)];
    this.#redeliveryBackoffMs = [
      ...(options.redeliveryBackoffMs ?? DEFAULT_REDELIVERY_BACKOFF_MS),
    ];
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
  }

  handle(type: string, handler: QueueHandler): void {
    validateHandlerType(type);
    this.#handlers.set(type, handler);
  }

  start(): void {
    if (this.#closed) throw new Error("Cannot start the queue: it is closed");
    if (this.#started) return;
    if (listening.has(this.#kv)) {
      throw new Error("Cannot start the queue: this Deno KV already has a queue listener");
    }
    listening.add(this.#kv);
    this.#started = true;
    // The promise ends only when the caller closes the KV.
    this.#kv.listenQueue((value: unknown) => this.#onMessage(value)).catch((error) => {
      this.#log.error("Queue listener stopped", { error: serializeError(error) });
    });
  }

  async enqueue(message: QueueMessage, options?: EnqueueOptions): Promise<string> {
    const valid = validateEnqueue(message, {
      ...options,
      backoffMs: options?.backoffMs ?? this.#backoffMs,
    });
    const id = crypto.randomUUID();
    const envelope: Envelope = {
      kind: ENVELOPE_KIND,
      id,
      hop: crypto.randomUUID(),
      type: valid.type,
      payload: valid.payload,
      attempt: 1,
      backoffMs: valid.backoffMs,
    };
    const record: PendingRecord = { hop: envelope.hop, delivered: 0 };
    const result = await this.#withEnvelope(
      this.#kv.atomic().check({ key: queuePendingKey(id), versionstamp: null })
        .set(queuePendingKey(id), record),
      envelope,
      valid.delayMs,
    ).commit();
    if (!result.ok) throw new Error(`Cannot enqueue "${valid.type}": id "${id}" is taken`);
    return id;
  }

  async deadLetters(limit = 100): Promise<DeadLetter[]> {
    await this.#adoptUndelivered();
    const out: DeadLetter[] = [];
    for await (const entry of this.#kv.list<DeadRecord>({ prefix: DEAD_PREFIX })) {
      if (isDeadRecord(entry.value)) out.push(toDeadLetter(entry.value));
    }
    out.sort((a, b) => b.failedAt.getTime() - a.failedAt.getTime() || a.id.localeCompare(b.id));
    return out.slice(0, Math.max(0, limit));
  }

  async replay(id: string): Promise<boolean> {
    if (!isUuid(id)) return false;
    await this.#adoptUndelivered();
    for (let i = 0; i < COMMIT_TRIES; i++) {
      const dead = await this.#kv.get<DeadRecord>(queueDeadLetterKey(id));
      if (!isDeadRecord(dead.value)) return false;
      const envelope: Envelope = {
        kind: ENVELOPE_KIND,
        id,
        hop: crypto.randomUUID(),
        type: dead.value.type,
        payload: dead.value.payload,
        attempt: 1,
        backoffMs: [...this.#backoffMs],
      };
      const record: PendingRecord = { hop: envelope.hop, delivered: 0 };
      const result = await this.#withEnvelope(
        this.#kv.atomic().check(dead).delete(queueDeadLetterKey(id))
          .set(queuePendingKey(id), record),
        envelope,
        0,
      ).commit();
      if (result.ok) {
        this.#log.info("Replayed a dead letter", { id, type: envelope.type });
        return true;
      }
    }
    throw new Error(`Cannot replay dead letter "${id}": it kept changing`);
  }

  async depth(): Promise<QueueDepth> {
    await this.#adoptUndelivered();
    let pending = 0;
    for await (const _ of this.#kv.list({ prefix: PENDING_PREFIX })) pending++;
    let deadLetters = 0;
    for await (const _ of this.#kv.list({ prefix: DEAD_PREFIX })) deadLetters++;
    return { pending, deadLetters };
  }

  async close(timeoutMs = DEFAULT_CLOSE_TIMEOUT_MS): Promise<void> {
    this.#closed = true;
    if (!await settleWithin([...this.#inflight], timeoutMs)) {
      this.#log.warning("Queue closed with handlers still running", {
        running: this.#inflight.size,
        timeout_ms: timeoutMs,
      });
    }
  }

  /** The listener; resolving tells KV the envelope is done, throwing makes KV redeliver it. */
  async #onMessage(value: unknown): Promise<void> {
    if (!isEnvelope(value)) {
      this.#log.error("Dropped a queue message that is not a queue envelope", {
        value_type: typeof value,
      });
      return;
    }
    if (this.#closed) {
      // Not ours to handle any more: hand it back to KV for the next process, without acking it
      // and without using up KV's redelivery schedule.
      await this.#withEnvelope(this.#kv.atomic(), value, AFTER_CLOSE_DELAY_MS).commit();
      return;
    }
    const task = this.#deliver(value);
    this.#inflight.add(task);
    try {
      await task;
    } finally {
      this.#inflight.delete(task);
    }
  }

  async #deliver(envelope: Envelope): Promise<void> {
    const claim = await this.#claim(envelope);
    if (!claim) return;
    const { attempt } = claim;
    const fields = { id: envelope.id, type: envelope.type, attempt };
    const limit = maxAttempts(envelope.backoffMs);
    if (attempt > limit) {
      await this.#bury(envelope, claim, limit, abandonedError(limit, claim.record.lastError));
      return;
    }
    const handler = this.#handlers.get(envelope.type);
    if (!handler) {
      await this.#bury(envelope, claim, attempt, noHandlerError(envelope.type));
      return;
    }
    try {
      await handler({ id: envelope.id, type: envelope.type, payload: envelope.payload, attempt });
    } catch (error) {
      const text = errorText(error);
      if (attempt >= limit) {
        await this.#bury(envelope, claim, attempt, text);
        return;
      }
      const delayMs = withJitter(envelope.backoffMs[attempt - 1] ?? 0, this.#random);
      const next: Envelope = { ...envelope, hop: crypto.randomUUID(), attempt: attempt + 1 };
      const record: PendingRecord = { hop: next.hop, delivered: attempt, lastError: text };
      const result = await this.#withEnvelope(
        this.#kv.atomic().check(claim.entry).set(queuePendingKey(envelope.id), record),
        next,
        delayMs,
      ).commit();
      if (result.ok) {
        this.#log.warning("Queue handler failed; will retry", {
          ...fields,
          retry_in_ms: delayMs,
          error: serializeError(error),
        });
      } else this.#lostRace(fields);
      return;
    }
    const result = await this.#kv.atomic().check(claim.entry).delete(queuePendingKey(envelope.id))
      .commit();
    if (result.ok) this.#log.debug("Queue message handled", fields);
    else this.#lostRace(fields);
  }

  /**
   * Records that `envelope` is being handed to a handler and returns its real attempt, or null
   * when the envelope is stale (done already, or replaced by a retry or a replay).
   */
  async #claim(
    envelope: Envelope,
  ): Promise<
    | { attempt: number; record: PendingRecord; entry: Deno.AtomicCheck }
    | null
  > {
    const key = queuePendingKey(envelope.id);
    for (let i = 0; i < COMMIT_TRIES; i++) {
      const current = await this.#kv.get<PendingRecord>(key);
      if (!current.value || current.value.hop !== envelope.hop) {
        this.#log.debug("Dropped a stale queue delivery", { id: envelope.id, type: envelope.type });
        return null;
      }
      // A delivery that reached a handler before without being settled was cut short by a crash.
      const attempt = Math.max(envelope.attempt, current.value.delivered + 1);
      const record: PendingRecord = { ...current.value, delivered: attempt };
      const result = await this.#kv.atomic().check(current).set(key, record).commit();
      if (result.ok) {
        return { attempt, record, entry: { key, versionstamp: result.versionstamp } };
      }
    }
    throw new Error(`Cannot claim queue message "${envelope.id}": its record kept changing`);
  }

  /** Moves a message to the dead letters, in one commit with removing its record. */
  async #bury(
    envelope: Envelope,
    claim: { entry: Deno.AtomicCheck },
    attempts: number,
    error: string,
  ): Promise<void> {
    const dead: DeadRecord = {
      id: envelope.id,
      type: envelope.type,
      payload: envelope.payload,
      attempts,
      error,
      failedAt: this.#clock.now(),
    };
    const result = await this.#kv.atomic().check(claim.entry)
      .delete(queuePendingKey(envelope.id))
      .set(queueDeadLetterKey(envelope.id), dead)
      .commit();
    const fields = { id: envelope.id, type: envelope.type, attempts, error };
    if (result.ok) this.#log.error("Queue message moved to dead letters", fields);
    else this.#lostRace(fields);
  }

  #lostRace(fields: Record<string, unknown>) {
    this.#log.warning("Queue message changed while it was handled; left as it is", fields);
  }

  /** Adds the enqueue of `envelope` (with the safety net) to an atomic operation. */
  #withEnvelope(op: Deno.AtomicOperation, envelope: Envelope, delayMs: number) {
    return op.enqueue(envelope, {
      delay: delayMs,
      keysIfUndelivered: [queueDeadLetterKey(envelope.id)],
      backoffSchedule: this.#redeliveryBackoffMs,
    });
  }

  /**
   * Turns envelopes that KV itself wrote to the dead letters (its redelivery schedule ran out)
   * into dead letters proper, removing their pending records.
   */
  async #adoptUndelivered(): Promise<void> {
    for await (const entry of this.#kv.list<unknown>({ prefix: DEAD_PREFIX })) {
      const envelope = entry.value;
      if (!isEnvelope(envelope)) continue;
      const pending = await this.#kv.get<PendingRecord>(queuePendingKey(envelope.id));
      const op = this.#kv.atomic().check(entry).check(pending);
      if (pending.value && pending.value.hop !== envelope.hop) {
        // A stale copy ran out; the message itself is still alive.
        await op.delete(entry.key).commit();
        continue;
      }
      const attempts = Math.max(envelope.attempt, pending.value?.delivered ?? 0);
      const dead: DeadRecord = {
        id: envelope.id,
        type: envelope.type,
        payload: envelope.payload,
        attempts,
        error: abandonedError(attempts, pending.value?.lastError),
        failedAt: this.#clock.now(),
      };
      const result = await op.delete(queuePendingKey(envelope.id)).set(entry.key, dead).commit();
      if (result.ok) this.#log.error("Queue message moved to dead letters", { ...dead });
    }
  }
}

function isEnvelope(value: unknown): value is Envelope {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<Envelope>;
  return v.kind === ENVELOPE_KIND && typeof v.id === "string" && typeof v.hop === "string" &&
    typeof v.type === "string" && typeof v.attempt === "number" && Array.isArray(v.backoffMs);
}

function isDeadRecord(value: unknown): value is DeadRecord {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<DeadRecord>;
  return typeof v.id === "string" && typeof v.type === "string" &&
    typeof v.attempts === "number" && typeof v.error === "string" &&
    typeof v.failedAt === "number";
}

function toDeadLetter(record: DeadRecord): DeadLetter {
  return {
    id: record.id,
    type: record.type,
    payload: record.payload,
    attempts: record.attempts,
    error: record.error,
    failedAt: new Date(record.failedAt),
  };
}
