/** Test helpers for the actor runtime: a clock that reports its sleeps, and scripted children. */

import { FakeClock } from "../lib/clock.ts";
import type { ChildSpec, RestartPolicy, RunningChild } from "./supervisor.ts";

/** Values pushed by one side and awaited by the other, in order. */
export class AsyncQueue<T> {
  #values: T[] = [];
  #waiters: ((value: T) => void)[] = [];

  push(value: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(value);
    else this.#values.push(value);
  }

  /** The next value, waiting for it if none is queued. */
  next(): Promise<T> {
    if (this.#values.length > 0) return Promise.resolve(this.#values.shift() as T);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  get length(): number {
    return this.#values.length;
  }
}

/** A {@linkcode FakeClock} that reports every sleep requested, so tests can await them. */
export class RecordingClock extends FakeClock {
  readonly sleeps = new AsyncQueue<number>();

  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return super.sleep(ms, signal);
  }
}

/** Lets every queued callback and timer of 0 ms run, to assert that nothing else happens. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** One incarnation of a scripted child; the test decides when it crashes or exits. */
export class FakeRun implements RunningChild {
  readonly id: string;
  readonly done: Promise<void>;
  #resolve: () => void;
  #reject: (error: unknown) => void;
  #ended = false;
  #events: string[];

  constructor(id: string, events: string[]) {
    this.id = id;
    this.#events = events;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.done = promise;
    this.#resolve = resolve;
    this.#reject = reject;
    promise.catch(() => {});
  }

  crash(error: unknown): void {
    this.#ended = true;
    this.#reject(error);
  }

  exit(): void {
    this.#ended = true;
    this.#resolve();
  }

  stop(deadlineMs: number): Promise<void> {
    if (!this.#ended) {
      this.#events.push(`stop:${this.id}:${deadlineMs}`);
      this.exit();
    }
    return this.done.then(() => {}, () => {});
  }
}

/** Builds child specs whose runs record `start:<id>` and `stop:<id>:<deadline>` in `events`. */
export class Probe {
  readonly events: string[] = [];
  readonly #starts = new Map<string, AsyncQueue<FakeRun>>();

  spec(
    id: string,
    restart: RestartPolicy = "permanent",
    options: { shutdownMs?: number; failStart?: Error } = {},
  ): ChildSpec {
    return {
      id,
      restart,
      shutdownMs: options.shutdownMs ?? 1000,
      start: () => {
        if (options.failStart) throw options.failStart;
        this.events.push(`start:${id}`);
        const run = new FakeRun(id, this.events);
        this.#queue(id).push(run);
        return run;
      },
    };
  }

  /** The next run of child `id`, waiting for its start. */
  started(id: string): Promise<FakeRun> {
    return this.#queue(id).next();
  }

  #queue(id: string): AsyncQueue<FakeRun> {
    let queue = this.#starts.get(id);
    if (!queue) this.#starts.set(id, queue = new AsyncQueue());
    return queue;
  }
}
