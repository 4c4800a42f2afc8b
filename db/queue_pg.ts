/**
 * The durable queue on PostgreSQL (tables `queue_jobs` and `queue_dead_letters`), for several
 * instances sharing one database; it runs on PGlite too.
 *
 * A worker claims due jobs with `FOR UPDATE SKIP LOCKED`, taking a lease (`locked_until`,
 * `locked_by`) and counting the attempt in the same statement; it renews the leases of the jobs
 * it is running, deletes a job when its handler resolves, and reschedules it (or moves it to the
 * dead letters) in one statement when the handler throws. A job whose worker died is claimed
 * again once its lease expires. Enqueue sends `NOTIFY` so idle workers wake at once; workers also
 * poll (delayed jobs, missed notifications, expired leases, database outages).
 */
import { type Db, isDbUnavailable, type Row } from "./client.ts";
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

/** Options of {@linkcode createPgQueue}. */
export interface PgQueueOptions {
  log: Logger;
  /** How long a claimed job stays invisible to other workers without a lease renewal (30 s). */
  visibilityTimeoutMs?: number;
  /** How often an idle worker looks for due jobs without being notified (1 s). */
  pollIntervalMs?: number;
  /** Handlers this worker runs at once (4). */
  concurrency?: number;
  /** Names this worker in `locked_by`; unique per process. */
  workerId?: string;
  /** Drives the waits between polls. */
  clock?: Clock;
  /** Retry delays for messages that do not name theirs, and for replayed dead letters. */
  backoffMs?: number[];
  /** The `NOTIFY` channel (default `trendedge_queue`). */
  channel?: string;
  /** Source of jitter; `Math.random` unless a test fixes it. */
  random?: () => number;
}

/** The `LISTEN/NOTIFY` channel that announces new jobs. */
export const QUEUE_CHANNEL = "trendedge_queue";
/** Shortest wait between two polls, so a job that cannot be claimed yet never spins the loop. */
const MIN_WAIT_MS = 20;

const SQL_ENQUEUE = `
WITH job AS (
  INSERT INTO queue_jobs (id, type, payload, backoff_ms, run_at)
  VALUES ($1::uuid, $2, $3::text::jsonb, $4::text::integer[],
          now() + $5::float8 * interval '1 millisecond')
  RETURNING id
)
SELECT job.id::text AS id, pg_notify($6, job.id::text)::text AS notified FROM job`;

const SQL_CLAIM = `
UPDATE queue_jobs
   SET locked_until = now() + $1::float8 * interval '1 millisecond',
       locked_by = $2,
       attempts = attempts + 1
 WHERE id IN (
   SELECT id FROM queue_jobs
    WHERE run_at <= now() AND (locked_until IS NULL OR locked_until < now())
    ORDER BY run_at
    LIMIT $3
      FOR UPDATE SKIP LOCKED)
RETURNING id::text AS id, type, payload::text AS payload, attempts,
          array_to_json(backoff_ms)::text AS backoff_ms, last_error`;

// Unlocked jobs only, so the run_at index answers it; expired leases are found by polling.
const SQL_NEXT_DUE = `
SELECT (EXTRACT(EPOCH FROM (run_at - now())) * 1000)::float8 AS wait_ms
  FROM queue_jobs
 WHERE locked_until IS NULL
 ORDER BY run_at
 LIMIT 1`;

const SQL_RENEW = `
UPDATE queue_jobs SET locked_until = now() + $1::float8 * interval '1 millisecond'
 WHERE locked_by = $2 AND id = ANY($3::text::uuid[])`;

const SQL_RELEASE = `
UPDATE queue_jobs SET locked_until = NULL, locked_by = NULL, attempts = attempts - 1
 WHERE locked_by = $1 AND id = ANY($2::text::uuid[])`;

const SQL_ACK = `
DELETE FROM queue_jobs WHERE id = $1::uuid AND locked_by = $2 AND attempts = $3 RETURNING id`;

const SQL_RETRY = `
UPDATE queue_jobs
   SET run_at = now() + $4::float8 * interval '1 millisecond',
       locked_until = NULL, locked_by = NULL, last_error = $5
 WHERE id = $1::uuid AND locked_by = $2 AND attempts = $3
RETURNING id`;

const SQL_BURY = `
WITH job AS (
  DELETE FROM queue_jobs WHERE id = $1::uuid AND locked_by = $2 AND attempts = $3
  RETURNING id, type, payload, created_at
)
INSERT INTO queue_dead_letters (id, type, payload, attempts, error, created_at)
SELECT id, type, payload, $4, $5, created_at FROM job
ON CONFLICT (id) DO UPDATE
   SET type = EXCLUDED.type, payload = EXCLUDED.payload, attempts = EXCLUDED.attempts,
       error = EXCLUDED.error, created_at = EXCLUDED.created_at, failed_at = now()
RETURNING id`;

const SQL_DEAD_LETTERS = `
SELECT id::text AS id, type, payload::text AS payload, attempts, error, failed_at
  FROM queue_dead_letters
 ORDER BY failed_at DESC, id
 LIMIT $1`;

const SQL_REPLAY = `
WITH dead AS (
  DELETE FROM queue_dead_letters WHERE id = $1::uuid RETURNING id, type, payload
), job AS (
  INSERT INTO queue_jobs (id, type, payload, backoff_ms)
  SELECT id, type, payload, $2::text::integer[] FROM dead
  RETURNING id
)
SELECT job.id::text AS id, pg_notify($3, job.id::text)::text AS notified FROM job`;

const SQL_DEPTH = `
SELECT (SELECT count(*) FROM queue_jobs)::integer AS pending,
       (SELECT count(*) FROM queue_dead_letters)::integer AS dead_letters`;

interface JobRow extends Row {
  id: string;
  type: string;
  payload: string;
  attempts: number;
  backoff_ms: string;
  last_error: string | null;
}

interface Job {
  id: string;
  type: string;
  payload: unknown;
  attempt: number;
  backoffMs: number[];
  lastError: string | null;
}

/**
 * Creates the PostgreSQL adapter of the durable queue on `db` (migrated). Every instance of the
 * app runs one; they share the jobs.
 *
 * @example
 * const queue = createPgQueue(db, { log, concurrency: 8 });
 * queue.handle("notify", async ({ payload }) => await send(payload));
 * queue.start();
 */
export function createPgQueue(db: Db, options: PgQueueOptions): Queue {
  return new PgQueue(db, options);
}

class PgQueue implements Queue {
  #db: Db;
  #log: Logger;
  #visibilityMs: number;
  #pollMs: number;
  #concurrency: number;
  #workerId: string;
  #clock: Clock;
  #backoffMs: number[];
  #channel: string;
  #random: () => number;
  #handlers = new Map<string, QueueHandler>();
  /** Jobs being handled, by id, with the task that settles them. */
  #running = new Map<string, Promise<void>>();
  #loop: Promise<void> | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #woken = false;
  #wake: (() => void) | undefined;
  #lastRenewal = 0;
  #listenFailed = false;
  #failingSince: number | undefined;
  #lastFailureLog: number | undefined;

  constructor(db: Db, options: PgQueueOptions) {
    this.#db = db;
    this.#log = options.log;
    this.#visibilityMs = positive(options.visibilityTimeoutMs ?? 30_000, "visibilityTimeoutMs");
    this.#pollMs = positive(options.pollIntervalMs ?? 1_000, "pollIntervalMs");
    this.#concurrency = Math.floor(positive(options.concurrency ?? 4, "concurrency"));
    this.#workerId = options.workerId ?? `${Deno.pid}-${crypto.randomUUID()}`;
    this.#clock = options.clock ?? systemClock;
    this.#backoffMs = [...(options.backoffMs ?? DEFAULT_BACKOFF_MS)];
    this.#channel = options.channel ?? QUEUE_CHANNEL;
    this.#random = options.random ?? Math.random;
  }

  handle(type: string, handler: QueueHandler): void {
    validateHandlerType(type);
    this.#handlers.set(type, handler);
  }

  start(): void {
    if (this.#closing) throw new Error("Cannot start the queue: it is closed");
    this.#loop ??= this.#run();
  }

  async enqueue(message: QueueMessage, options?: EnqueueOptions): Promise<string> {
    const valid = validateEnqueue(message, {
      ...options,
      backoffMs: options?.backoffMs ?? this.#backoffMs,
    });
    const id = crypto.randomUUID();
    await this.#db.query(SQL_ENQUEUE, [
      id,
      valid.type,
      valid.json,
      intArray(valid.backoffMs),
      valid.delayMs,
      this.#channel,
    ]);
    return id;
  }

  async deadLetters(limit = 100): Promise<DeadLetter[]> {
    const rows = await this.#db.query<
      {
        id: string;
        type: string;
        payload: string;
        attempts: number;
        error: string;
        failed_at: Date;
      }
    >(SQL_DEAD_LETTERS, [Math.max(0, Math.floor(limit))]);
    return rows.map((r) => ({
      id: r.id,
      type: r.type,
      payload: JSON.parse(r.payload),
      attempts: r.attempts,
      error: r.error,
      failedAt: new Date(r.failed_at),
    }));
  }

  async replay(id: string): Promise<boolean> {
    if (!isUuid(id)) return false;
    const rows = await this.#db.query(SQL_REPLAY, [id, intArray(this.#backoffMs), this.#channel]);
    if (rows.length === 0) return false;
    this.#log.info("Replayed a dead letter", { id });
    return true;
  }

  async depth(): Promise<QueueDepth> {
    const [row] = await this.#db.query<{ pending: number; dead_letters: number }>(SQL_DEPTH);
    return { pending: row?.pending ?? 0, deadLetters: row?.dead_letters ?? 0 };
  }

  close(timeoutMs = DEFAULT_CLOSE_TIMEOUT_MS): Promise<void> {
    this.#closed ??= this.#shutdown(timeoutMs);
    return this.#closed;
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    this.#closing = true;
    this.#signal();
    const started = performance.now();
    const settled = await settleWithin([...this.#loop ? [this.#loop] : []], timeoutMs) &&
      await settleWithin([...this.#running.values()], timeoutMs - (performance.now() - started));
    if (!settled) {
      this.#log.warning("Queue closed with handlers still running", {
        running: this.#running.size,
        timeout_ms: timeoutMs,
      });
    }
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await unlisten?.().catch((error) => {
      this.#log.warning("Cannot stop listening for queue notifications", {
        error: serializeError(error),
      });
    });
  }

  /** The worker loop: claim what is due and free slots allow, then wait for a reason to look. */
  async #run(): Promise<void> {
    while (!this.#closing) {
      let waitMs = this.#pollMs;
      // A signal from here on (a notification, a handler finishing) cuts the next wait short.
      this.#woken = false;
      try {
        await this.#listen();
        await this.#renewLeases();
        const free = this.#concurrency - this.#running.size;
        if (free > 0) {
          const jobs = await this.#claim(free);
          this.#recovered();
          if (this.#closing) {
            await this.#release(jobs);
            break;
          }
          for (const job of jobs) this.#dispatch(job);
          // A full batch means more may be due: claim again once a slot is free.
          if (jobs.length === free) continue;
          waitMs = await this.#nextDueMs();
        }
      } catch (error) {
        this.#pollFailed(error);
      }
      if (this.#running.size > 0) waitMs = Math.min(waitMs, this.#visibilityMs / 3);
      await this.#sleep(waitMs);
    }
  }

  /** Logs a failed poll: at once, then at most once a minute while the failures go on. */
  #pollFailed(error: unknown): void {
    const now = this.#clock.now();
    this.#failingSince ??= now;
    if (this.#lastFailureLog !== undefined && now - this.#lastFailureLog < 60_000) return;
    this.#lastFailureLog = now;
    const fields = {
      worker: this.#workerId,
      failing_ms: now - this.#failingSince,
      error: serializeError(error),
    };
    if (isDbUnavailable(error)) {
      this.#log.warning("Cannot poll the queue: the database is unavailable", fields);
    } else this.#log.error("Cannot poll the queue", fields);
  }

  #recovered(): void {
    if (this.#failingSince === undefined) return;
    this.#log.info("Queue polling recovered", {
      down_ms: Math.round(this.#clock.now() - this.#failingSince),
    });
    this.#failingSince = undefined;
    this.#lastFailureLog = undefined;
  }

  /** LISTENs for new jobs; without it (e.g. behind a transaction pooler) polling still works. */
  async #listen(): Promise<void> {
    if (this.#unlisten) return;
    try {
      this.#unlisten = await this.#db.listen(this.#channel, () => this.#signal());
      if (this.#listenFailed) this.#log.info("Listening for queue notifications again");
      this.#listenFailed = false;
    } catch (error) {
      if (!this.#listenFailed) {
        this.#log.warning("Cannot listen for queue notifications; polling only", {
          channel: this.#channel,
          error: serializeError(error),
        });
      }
      this.#listenFailed = true;
    }
  }

  async #claim(limit: number): Promise<Job[]> {
    const rows = await this.#db.query<JobRow>(SQL_CLAIM, [
      this.#visibilityMs,
      this.#workerId,
      limit,
    ]);
    return rows.map((r) => ({
      id: r.id,
      type: r.type,
      payload: JSON.parse(r.payload),
      attempt: r.attempts,
      backoffMs: JSON.parse(r.backoff_ms) as number[],
      lastError: r.last_error,
    }));
  }

  async #release(jobs: Job[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.#db.query(SQL_RELEASE, [this.#workerId, uuidArray(jobs.map((j) => j.id))]);
  }

  /** Keeps the leases of running jobs from expiring while their handlers are still busy. */
  async #renewLeases(): Promise<void> {
    const now = this.#clock.now();
    if (this.#running.size === 0 || now - this.#lastRenewal < this.#visibilityMs / 3) return;
    this.#lastRenewal = now;
    await this.#db.query(SQL_RENEW, [
      this.#visibilityMs,
      this.#workerId,
      uuidArray([...this.#running.keys()]),
    ]);
  }

  async #nextDueMs(): Promise<number> {
    const [row] = await this.#db.query<{ wait_ms: number | null }>(SQL_NEXT_DUE);
    const wait = row?.wait_ms;
    if (wait === null || wait === undefined) return this.#pollMs;
    return Math.min(this.#pollMs, Math.max(MIN_WAIT_MS, Math.ceil(wait)));
  }

  #dispatch(job: Job): void {
    const task = this.#settle(job)
      .catch((error) => {
        // The lease expires and the job runs again: at-least-once.
        this.#log.error("Cannot settle queue job; it will run again", {
          id: job.id,
          type: job.type,
          attempt: job.attempt,
          error: serializeError(error),
        });
      })
      .finally(() => {
        this.#running.delete(job.id);
        this.#signal();
      });
    this.#running.set(job.id, task);
  }

  /** Runs the job's handler and records the outcome. */
  async #settle(job: Job): Promise<void> {
    const fields = { id: job.id, type: job.type, attempt: job.attempt };
    const limit = maxAttempts(job.backoffMs);
    if (job.attempt > limit) {
      await this.#bury(job, limit, abandonedError(limit, job.lastError));
      return;
    }
    const handler = this.#handlers.get(job.type);
    if (!handler) {
      await this.#bury(job, job.attempt, noHandlerError(job.type));
      return;
    }
    try {
      await handler({ id: job.id, type: job.type, payload: job.payload, attempt: job.attempt });
    } catch (error) {
      const text = errorText(error);
      if (job.attempt >= limit) {
        await this.#bury(job, job.attempt, text);
        return;
      }
      const delayMs = withJitter(job.backoffMs[job.attempt - 1] ?? 0, this.#random);
      const rows = await this.#db.query(SQL_RETRY, [
        job.id,
        this.#workerId,
        job.attempt,
        delayMs,
        text,
      ]);
      if (rows.length === 0) this.#lostLease(fields);
      else {
        this.#log.warning("Queue handler failed; will retry", {
          ...fields,
          retry_in_ms: delayMs,
          error: serializeError(error),
        });
      }
      return;
    }
    const rows = await this.#db.query(SQL_ACK, [job.id, this.#workerId, job.attempt]);
    if (rows.length === 0) this.#lostLease(fields);
    else this.#log.debug("Queue message handled", fields);
  }

  /** Moves a job to the dead letters (one statement: delete and insert commit together). */
  async #bury(job: Job, attempts: number, error: string): Promise<void> {
    const rows = await this.#db.query(SQL_BURY, [
      job.id,
      this.#workerId,
      job.attempt,
      attempts,
      error,
    ]);
    const fields = { id: job.id, type: job.type, attempts, error };
    if (rows.length === 0) this.#lostLease(fields);
    else this.#log.error("Queue message moved to dead letters", fields);
  }

  #lostLease(fields: Record<string, unknown>) {
    this.#log.warning("Queue job lease was lost (another worker may run it again)", fields);
  }

  /** Wakes the loop (a notification, a finished handler, close); never lost while it works. */
  #signal(): void {
    this.#woken = true;
    this.#wake?.();
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#woken || this.#closing) return;
    const abort = new AbortController();
    const woken = new Promise<void>((resolve) => this.#wake = resolve);
    try {
      await Promise.race([woken, this.#clock.sleep(ms, abort.signal).catch(() => {})]);
    } finally {
      this.#wake = undefined;
      abort.abort();
    }
  }
}

function positive(value: number, name: string): number {
  if (!(typeof value === "number" && Number.isFinite(value) && value > 0)) {
    throw new RangeError(`Cannot create the queue: "${name}" must be a positive number`);
  }
  return value;
}

/** An `integer[]` literal, passed as text so both engines read it the same way. */
function intArray(values: readonly number[]): string {
  return `{${values.map((v) => Math.round(v)).join(",")}}`;
}

function uuidArray(ids: readonly string[]): string {
  return `{${ids.join(",")}}`;
}
