/**
 * Typed actors: a behaviour (a reducer over messages of one type) behind a bounded mailbox,
 * reached only through an {@linkcode ActorRef}. The mailbox and the ref live as long as the
 * {@linkcode Actor}; the state is rebuilt by `init` on every (re)start, so a supervisor can
 * restart the actor while senders keep their ref.
 */

import { type Clock, systemClock } from "../lib/clock.ts";
import { type Logger, serializeError } from "../lib/log.ts";
import { Mailbox } from "./mailbox.ts";
import type { RunningChild } from "./supervisor.ts";

/** How an `ask` is answered; settling a second time is ignored. */
export interface Reply<R> {
  ok(value: R): void;
  fail(error: unknown): void;
}

/** Options of {@linkcode ActorRef.ask}: there is no ask without a timeout. */
export interface AskOptions {
  /** Milliseconds to wait for the reply; a positive, finite number. */
  timeoutMs: number;
}

/** The stable handle to an actor: the only way to reach it. */
export interface ActorRef<T> {
  readonly name: string;
  /**
   * Enqueues `msg`, waiting while the mailbox is full. Rejects with
   * {@linkcode ActorStoppedError} once the actor is stopping or stopped.
   */
  tell(msg: T): Promise<void>;
  /**
   * Sends the message built by `make` around a reply and resolves with the reply. Rejects with
   * {@linkcode AskTimeoutError} after `timeoutMs`, with the crash error when the message
   * crashes the actor, and with {@linkcode ActorStoppedError} when the message is dropped.
   *
   * @example
   * const position = await executor.ask<Position>(
   *   (reply) => ({ type: "position", symbol: "AAPL", reply }),
   *   { timeoutMs: 500 },
   * );
   */
  ask<R>(make: (reply: Reply<R>) => T, options: AskOptions): Promise<R>;
}

/** What a behaviour sees besides its state and the message. */
export interface ActorContext<T> {
  self: ActorRef<T>;
  log: Logger;
  clock: Clock;
  name: string;
}

/**
 * An actor's behaviour: `init` builds fresh state on every (re)start, `receive` reduces one
 * message at a time (throwing is a crash), `stop` releases what the state holds. `stop` is
 * called after a graceful stop and, best effort, after a crash.
 */
export interface Behavior<S, T> {
  init(ctx: ActorContext<T>): S | Promise<S>;
  receive(state: S, msg: T, ctx: ActorContext<T>): S | Promise<S>;
  stop?(state: S, ctx: ActorContext<T>): void | Promise<void>;
}

/** Where an actor is in its life: `idle` before the first run, `crashed` until re-run. */
export type ActorStatus = "idle" | "running" | "stopping" | "stopped" | "crashed";

/** An actor: its ref and mailbox, and `run` to start an incarnation under a supervisor. */
export interface Actor<T> {
  readonly name: string;
  /** The handle to give out; valid across restarts. */
  readonly ref: ActorRef<T>;
  /** Messages waiting in the mailbox, for health checks and metrics. */
  readonly mailboxSize: number;
  readonly status: ActorStatus;
  /**
   * Starts an incarnation with fresh state from `init`. Its `done` resolves after a stop and
   * rejects with the error when `init` or `receive` throws; mail left in the mailbox after a
   * crash waits for the next `run`. Throws when an incarnation is already running.
   */
  run(): RunningChild;
}

/** Options of {@linkcode createActor}. */
export interface ActorOptions {
  /** Mailbox capacity; senders wait while it is full. Defaults to 1000. */
  capacity?: number;
  log: Logger;
  clock?: Clock;
}

/** No reply came within the ask's timeout. */
export class AskTimeoutError extends Error {
  override name = "AskTimeoutError";
  readonly actor: string;
  readonly timeoutMs: number;

  constructor(actor: string, timeoutMs: number) {
    super(`Cannot get a reply from "${actor}": no reply within ${timeoutMs} ms`);
    this.actor = actor;
    this.timeoutMs = timeoutMs;
  }
}

/** The actor is stopping or stopped: the message was refused or dropped. */
export class ActorStoppedError extends Error {
  override name = "ActorStoppedError";
  readonly actor: string;

  constructor(actor: string, detail: string) {
    super(`Cannot deliver to "${actor}": ${detail}`);
    this.actor = actor;
  }
}

const DEFAULT_CAPACITY = 1000;

/**
 * Creates an actor; nothing runs until `run` is called (usually by a supervisor). Messages
 * told before that wait in the mailbox.
 *
 * @example
 * const counter = createActor("counter", {
 *   init: () => 0,
 *   receive: (n, msg: { type: "add"; by: number }) => n + msg.by,
 * }, { log });
 * await supervisor.start([
 *   { id: "counter", start: () => counter.run(), restart: "permanent", shutdownMs: 1000 },
 * ]);
 * await counter.ref.tell({ type: "add", by: 2 });
 */
export function createActor<S, T>(
  name: string,
  behavior: Behavior<S, T>,
  options: ActorOptions,
): Actor<T> {
  return new ActorCell(name, behavior, options);
}

/** A queued message, with the way to fail its ask when it is dropped or crashes the actor. */
type Envelope<T> = { msg: T; fail?: (error: unknown) => void };

/** The actor's lasting parts, shared by its incarnations. */
type Cell<S, T> = {
  name: string;
  behavior: Behavior<S, T>;
  mailbox: Mailbox<Envelope<T>>;
  ctx: ActorContext<T>;
  clock: Clock;
  status: ActorStatus;
  current: Incarnation<S, T> | undefined;
};

class ActorCell<S, T> implements Actor<T> {
  readonly name: string;
  readonly ref: ActorRef<T>;
  #cell: Cell<S, T>;

  constructor(name: string, behavior: Behavior<S, T>, options: ActorOptions) {
    const clock = options.clock ?? systemClock;
    const mailbox = new Mailbox<Envelope<T>>({
      capacity: options.capacity ?? DEFAULT_CAPACITY,
      name,
    });
    this.name = name;
    this.ref = {
      name,
      tell: (msg) => this.#send({ msg }),
      ask: (make, askOptions) => this.#ask(make, askOptions),
    };
    const ctx: ActorContext<T> = { self: this.ref, log: options.log.child(name), clock, name };
    this.#cell = { name, behavior, mailbox, ctx, clock, status: "idle", current: undefined };
  }

  get mailboxSize(): number {
    return this.#cell.mailbox.size;
  }

  get status(): ActorStatus {
    return this.#cell.status;
  }

  run(): RunningChild {
    const cell = this.#cell;
    if (cell.status === "running" || cell.status === "stopping") {
      throw new Error(`Cannot run actor "${this.name}": it is already ${cell.status}`);
    }
    cell.status = "running";
    return new Incarnation(cell);
  }

  #send(envelope: Envelope<T>): Promise<void> {
    const { status } = this.#cell;
    if (status === "stopping" || status === "stopped") {
      return Promise.reject(new ActorStoppedError(this.name, `the actor is ${status}`));
    }
    return this.#cell.mailbox.send(envelope);
  }

  #ask<R>(make: (reply: Reply<R>) => T, options: AskOptions): Promise<R> {
    const { timeoutMs } = options;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      return Promise.reject(
        new RangeError(
          `Cannot ask "${this.name}": timeoutMs must be a positive number, got "${timeoutMs}"`,
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<R>();
    const timer = new AbortController();
    let settled = false;
    function settle(): boolean {
      if (settled) return false;
      settled = true;
      timer.abort();
      return true;
    }
    const reply: Reply<R> = {
      ok(value) {
        if (settle()) resolve(value);
      },
      fail(error) {
        if (settle()) reject(error);
      },
    };
    this.#cell.clock.sleep(timeoutMs, timer.signal).then(
      () => reply.fail(new AskTimeoutError(this.name, timeoutMs)),
      () => {}, // aborted: the ask settled first
    );
    let msg: T;
    try {
      msg = make(reply);
    } catch (error) {
      reply.fail(error);
      return promise;
    }
    this.#send({ msg, fail: reply.fail }).catch(reply.fail);
    return promise;
  }
}

/** Returned by `#settle` when the stop deadline passed before the message finished. */
const ABANDONED: unique symbol = Symbol("abandoned");

/** One run of the processing loop, from `init` to a stop or a crash. */
class Incarnation<S, T> implements RunningChild {
  readonly done: Promise<void>;
  #cell: Cell<S, T>;
  #stopRequested = false;
  #deadlinePassed = false;
  #ended = false;
  /** Aborted on stop, to wake a loop waiting on an empty mailbox. */
  #wake = new AbortController();
  /** Aborted when the loop ends, to clear the deadline timer. */
  #deadlineTimer = new AbortController();
  /** The message being processed, so its ask fails with the crash error. */
  #current: Envelope<T> | undefined;
  /** Gives up on the message in progress; set while an async `receive` runs. */
  #abandon: (() => void) | undefined;
  #stopped: Promise<void> | undefined;

  constructor(cell: Cell<S, T>) {
    this.#cell = cell;
    cell.current = this; // before the loop starts: `init` may throw synchronously
    this.done = this.#loop();
    // The owner watches `done`; nobody is forced to, and a crash must not kill the process.
    this.done.catch(() => {});
  }

  stop(deadlineMs: number): Promise<void> {
    if (this.#stopped) return this.#stopped;
    const cell = this.#cell;
    if (this.#ended) {
      // Stopping a crashed incarnation retires the actor: its mail is dropped, tells refused.
      if (cell.current === this && cell.status === "crashed") {
        cell.status = "stopped";
        this.#dropMail();
      }
      this.#stopped = Promise.resolve();
      return this.#stopped;
    }
    this.#stopRequested = true;
    cell.status = "stopping";
    cell.clock.sleep(Math.max(0, deadlineMs), this.#deadlineTimer.signal).then(() => {
      this.#deadlinePassed = true;
      this.#abandon?.();
    }, () => {});
    this.#wake.abort();
    this.#stopped = this.done.then(() => {}, () => {});
    return this.#stopped;
  }

  async #loop(): Promise<void> {
    const { behavior, mailbox, ctx } = this.#cell;
    let held: { state: S } | undefined;
    try {
      const initial = behavior.init(ctx);
      const state = initial instanceof Promise ? await this.#settle(initial) : initial;
      if (state === ABANDONED) {
        // `init` outlived the stop deadline: there is no state to stop.
        this.#dropMail();
        this.#end("stopped");
        return;
      }
      held = { state };
      for (;;) {
        if (this.#stopRequested && (this.#deadlinePassed || mailbox.size === 0)) break;
        let envelope: Envelope<T> | undefined;
        try {
          envelope = await mailbox.receive(this.#stopRequested ? undefined : this.#wake.signal);
        } catch (error) {
          if (this.#wake.signal.aborted) continue;
          throw error;
        }
        if (envelope === undefined) break;
        this.#current = envelope;
        const next = behavior.receive(held.state, envelope.msg, ctx);
        const state = next instanceof Promise ? await this.#settle(next) : next;
        if (state === ABANDONED) {
          ctx.log.warning("Actor abandoned a message still in progress at its stop deadline", {
            actor: this.#cell.name,
          });
          envelope.fail?.(
            new ActorStoppedError(this.#cell.name, "the actor stopped before replying"),
          );
          this.#current = undefined;
          break;
        }
        held.state = state;
        this.#current = undefined;
      }
    } catch (error) {
      this.#current?.fail?.(error);
      this.#current = undefined;
      if (held) await this.#callStop(held.state);
      // Mail stays for the next incarnation, unless this one was being stopped anyway.
      if (this.#stopRequested) this.#dropMail();
      this.#end(this.#stopRequested ? "stopped" : "crashed");
      throw error;
    }
    this.#dropMail();
    await this.#callStop(held.state);
    this.#end("stopped");
  }

  /** Waits for an async `init` or `receive`, unless the stop deadline passes first. */
  #settle(pending: Promise<S>): Promise<S | typeof ABANDONED> {
    if (this.#deadlinePassed) return Promise.resolve(ABANDONED);
    return new Promise<S | typeof ABANDONED>((resolve, reject) => {
      this.#abandon = () => resolve(ABANDONED);
      pending.then(resolve, reject);
    }).finally(() => this.#abandon = undefined);
  }

  async #callStop(state: S): Promise<void> {
    const { behavior, ctx } = this.#cell;
    try {
      await behavior.stop?.(state, ctx);
    } catch (error) {
      ctx.log.error("Actor failed to stop cleanly", {
        actor: this.#cell.name,
        error: serializeError(error),
      });
    }
  }

  /** Drops what is left in the mailbox, failing the asks among it. */
  #dropMail(): void {
    const { mailbox, ctx, name } = this.#cell;
    const dropped = mailbox.drain();
    for (const envelope of dropped) {
      envelope.fail?.(new ActorStoppedError(name, "the message was dropped at stop"));
    }
    if (dropped.length > 0) {
      ctx.log.warning("Actor stopped with messages dropped", {
        actor: name,
        dropped: dropped.length,
      });
    }
  }

  #end(status: "stopped" | "crashed"): void {
    this.#ended = true;
    this.#deadlineTimer.abort();
    if (this.#cell.current === this) this.#cell.status = status;
  }
}
