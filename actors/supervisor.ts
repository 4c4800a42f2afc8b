/**
 * A one_for_one supervisor after Erlang/OTP: children start in order and stop in reverse, a
 * child that ends is restarted according to its policy after a backoff, and more than
 * `intensity` restarts within `periodMs` make the supervisor stop everything and fail loudly,
 * so that its own supervisor (or `main.ts`) decides what comes next.
 */

import { type Clock, systemClock } from "../lib/clock.ts";
import { type Logger, serializeError } from "../lib/log.ts";

/** A started child as a supervisor sees it; actors and supervisors both are one. */
export interface RunningChild {
  /** Resolves when the child ends normally, rejects with the error when it crashes. */
  readonly done: Promise<void>;
  /**
   * Asks the child to stop within `deadlineMs` and resolves once it has ended (whether or not
   * it crashed). Harmless once the child has ended.
   */
  stop(deadlineMs: number): Promise<void>;
}

/** When a child that ended is started again: always, only after a crash, or never. */
export type RestartPolicy = "permanent" | "transient" | "temporary";

/** How to start one child and how to treat it; `shutdownMs` is its stop deadline. */
export interface ChildSpec {
  id: string;
  start(): RunningChild | Promise<RunningChild>;
  restart: RestartPolicy;
  shutdownMs: number;
}

/** A child's state as reported by {@linkcode Supervisor.status}. */
export type ChildState = "running" | "restarting" | "stopped";

/** One child, for health checks. `startedAt` is in clock milliseconds. */
export interface ChildStatus {
  id: string;
  state: ChildState;
  restarts: number;
  lastError?: string;
  startedAt?: number;
}

/** Delay before a restart: `initialMs`, doubling per consecutive restart, at most `maxMs`. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** Options of {@linkcode Supervisor}. */
export interface SupervisorOptions {
  name: string;
  /** Restarts allowed within `periodMs`, all children counted together; one more gives up. */
  intensity: number;
  periodMs: number;
  /** Defaults to 100 ms doubling up to 5 s. */
  backoff?: BackoffOptions;
  log: Logger;
  clock?: Clock;
}

/** The supervisor saw more than `intensity` restarts within `periodMs` and stopped. */
export class SupervisorGaveUpError extends Error {
  override name = "SupervisorGaveUpError";
  readonly supervisor: string;
  readonly childId: string;
  readonly restarts: number;

  constructor(
    supervisor: string,
    child: { id: string; restarts: number; periodMs: number; error: unknown },
  ) {
    super(
      `Supervisor "${supervisor}" gave up: ${child.restarts} restarts within ${child.periodMs} ms, ` +
        `last from "${child.id}": ${messageOf(child.error)}`,
      { cause: child.error },
    );
    this.supervisor = supervisor;
    this.childId = child.id;
    this.restarts = child.restarts;
  }
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 5000 };

type Phase = "idle" | "running" | "stopping" | "stopped" | "failed";

type Child = {
  spec: ChildSpec;
  state: ChildState;
  /** The latest incarnation, kept after it ended so that a stop can retire it. */
  running: RunningChild;
  restarts: number;
  /** Restarts since the child last ran longer than `periodMs`; drives the backoff. */
  consecutive: number;
  lastError?: string;
  startedAt: number;
  /** Aborts the backoff sleep of a pending restart. */
  backoff?: AbortController;
  /** Set by `stopChild`: the child is on its way out and must not be restarted. */
  removing: boolean;
};

/**
 * A one_for_one supervisor. It is itself a {@linkcode RunningChild}, so supervisors nest:
 * a parent's child spec builds a fresh supervisor on every start.
 *
 * @example
 * const root = new Supervisor({ name: "root", intensity: 5, periodMs: 30_000, log });
 * await root.start([
 *   { id: "executor", start: () => executor.run(), restart: "permanent", shutdownMs: 5000 },
 *   {
 *     id: "scanners",
 *     start: async () => {
 *       const sup = new Supervisor({ name: "scanners", intensity: 3, periodMs: 10_000, log });
 *       await sup.start(scannerSpecs);
 *       return sup;
 *     },
 *     restart: "permanent",
 *     shutdownMs: 10_000,
 *   },
 * ]);
 * await root.done; // rejects with SupervisorGaveUpError when it gives up
 */
export class Supervisor implements RunningChild {
  readonly name: string;
  /** Resolves after `stop`; rejects with {@linkcode SupervisorGaveUpError} on giving up. */
  readonly done: Promise<void>;
  #resolveDone: () => void;
  #rejectDone: (error: unknown) => void;
  #intensity: number;
  #periodMs: number;
  #backoff: BackoffOptions;
  #log: Logger;
  #clock: Clock;
  #phase: Phase = "idle";
  /** In start order; a restarted child keeps its place. */
  #children = new Map<string, Child>();
  /** Ids whose first start is in progress, so that a duplicate is refused meanwhile. */
  #starting = new Set<string>();
  #restartTimes: number[] = [];
  #shutdown: Promise<void> | undefined;

  constructor(options: SupervisorOptions) {
    this.name = options.name;
    this.#intensity = options.intensity;
    this.#periodMs = options.periodMs;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.done = promise;
    this.#resolveDone = resolve;
    this.#rejectDone = reject;
    // Giving up is logged at critical; an unwatched `done` must not kill the process.
    promise.catch(() => {});
  }

  /** True from `start` until it stops or gives up. */
  get running(): boolean {
    return this.#phase === "running";
  }

  /**
   * Starts `specs` in order, awaiting each. When one fails to start, the ones already started
   * are stopped in reverse order and this rejects (and so does `done`).
   */
  async start(specs: readonly ChildSpec[]): Promise<void> {
    if (this.#phase !== "idle") {
      throw new Error(`Cannot start supervisor "${this.name}": it is ${this.#phase}`);
    }
    const ids = specs.map((spec) => spec.id);
    const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
    if (duplicate !== undefined) {
      throw new Error(
        `Cannot start supervisor "${this.name}": child id "${duplicate}" is repeated`,
      );
    }
    this.#phase = "running";
    this.#log.info("Supervisor starting", { supervisor: this.name, children: ids });
    for (const spec of specs) {
      try {
        await this.#startNew(spec);
      } catch (error) {
        if (this.#phase !== "running") throw error; // stopped or gave up meanwhile
        const failure = new Error(
          `Cannot start supervisor "${this.name}": child "${spec.id}" failed to start: ${
            messageOf(error)
          }`,
          { cause: error },
        );
        this.#log.error("Child failed to start", {
          supervisor: this.name,
          child: spec.id,
          error: serializeError(error),
        });
        await this.#shutDown(() => this.#rejectDone(failure));
        throw failure;
      }
    }
  }

  /** Starts one more child, last in stop order. Throws when the id is taken or the start fails. */
  async startChild(spec: ChildSpec): Promise<void> {
    if (this.#phase !== "running") {
      throw new Error(
        `Cannot start child "${spec.id}": supervisor "${this.name}" is ${this.#phase}`,
      );
    }
    if (this.#children.has(spec.id) || this.#starting.has(spec.id)) {
      throw new Error(
        `Cannot start child "${spec.id}": supervisor "${this.name}" already has a child with this id`,
      );
    }
    await this.#startNew(spec);
  }

  /** Stops one child within its `shutdownMs` and forgets it; it is not restarted. */
  async stopChild(id: string): Promise<void> {
    const child = this.#children.get(id);
    if (!child || child.removing) {
      throw new Error(`Cannot stop child "${id}": supervisor "${this.name}" has no such child`);
    }
    child.removing = true;
    await this.#stopOne(child, child.spec.shutdownMs);
    this.#children.delete(id);
    this.#log.info("Child stopped", { supervisor: this.name, child: id });
  }

  /**
   * Stops every child in reverse start order, each within its `shutdownMs` (and within
   * `deadlineMs` overall when given), then resolves `done`.
   */
  stop(deadlineMs?: number): Promise<void> {
    if (this.#shutdown) return this.#shutdown;
    if (this.#phase === "idle") {
      this.#phase = "stopped";
      this.#resolveDone();
      this.#shutdown = Promise.resolve();
      return this.#shutdown;
    }
    this.#log.info("Supervisor stopping", { supervisor: this.name });
    return this.#shutDown(() => {
      this.#log.info("Supervisor stopped", { supervisor: this.name });
      this.#resolveDone();
    }, deadlineMs);
  }

  /** Every child in start order, for health checks. */
  status(): ChildStatus[] {
    return [...this.#children.values()].map((child) => ({
      id: child.spec.id,
      state: child.state,
      restarts: child.restarts,
      ...(child.lastError === undefined ? {} : { lastError: child.lastError }),
      ...(child.state === "running" ? { startedAt: child.startedAt } : {}),
    }));
  }

  async #startNew(spec: ChildSpec): Promise<void> {
    this.#starting.add(spec.id);
    let running: RunningChild;
    try {
      running = await spec.start();
    } finally {
      this.#starting.delete(spec.id);
    }
    if (this.#phase !== "running") {
      await running.stop(spec.shutdownMs);
      throw new Error(
        `Cannot start child "${spec.id}": supervisor "${this.name}" is ${this.#phase}`,
      );
    }
    const child: Child = {
      spec,
      state: "running",
      running,
      restarts: 0,
      consecutive: 0,
      startedAt: this.#clock.now(),
      removing: false,
    };
    this.#children.set(spec.id, child);
    this.#watch(child, running);
    this.#log.info("Child started", { supervisor: this.name, child: spec.id });
  }

  #watch(child: Child, running: RunningChild): void {
    running.done.then(
      () => this.#onExit(child, running, undefined),
      (error) => this.#onExit(child, running, { error }),
    ).catch((error) => {
      this.#log.critical("Supervisor failed to handle a child exit", {
        supervisor: this.name,
        child: child.spec.id,
        error: serializeError(error),
      });
    });
  }

  async #onExit(child: Child, running: RunningChild, crash?: { error: unknown }): Promise<void> {
    if (child.running !== running) return;
    const id = child.spec.id;
    const ranMs = this.#clock.now() - child.startedAt;
    if (crash) {
      child.lastError = messageOf(crash.error);
      this.#log.error("Child crashed", {
        supervisor: this.name,
        child: id,
        error: serializeError(crash.error),
      });
    } else {
      this.#log.info("Child exited", { supervisor: this.name, child: id });
    }
    if (this.#phase !== "running" || child.removing) {
      child.state = "stopped";
      return;
    }
    const policy = child.spec.restart;
    if (policy === "temporary" || (policy === "transient" && !crash)) {
      child.state = "stopped";
      if (policy === "temporary") this.#children.delete(id);
      await running.stop(child.spec.shutdownMs); // retires it, e.g. drops an actor's mail
      return;
    }
    if (ranMs > this.#periodMs) child.consecutive = 0;
    await this.#restart(child, crash ? crash.error : new Error(`Child "${id}" exited`));
  }

  /** Restarts `child` after its backoff, again while its start fails, or gives up. */
  async #restart(child: Child, error: unknown): Promise<void> {
    const id = child.spec.id;
    for (;;) {
      const now = this.#clock.now();
      this.#restartTimes = this.#restartTimes.filter((t) => t > now - this.#periodMs);
      this.#restartTimes.push(now);
      if (this.#restartTimes.length > this.#intensity) {
        return await this.#giveUp(child, error);
      }
      const { initialMs, maxMs } = this.#backoff;
      const delayMs = Math.min(maxMs, initialMs * 2 ** child.consecutive);
      child.consecutive++;
      child.restarts++;
      child.state = "restarting";
      this.#log.warning("Restarting child", {
        supervisor: this.name,
        child: id,
        restarts: child.restarts,
        delayMs,
      });
      const backoff = new AbortController();
      child.backoff = backoff;
      try {
        await this.#clock.sleep(delayMs, backoff.signal);
      } catch {
        return; // a stop cancelled the restart, and marks the child stopped
      } finally {
        child.backoff = undefined;
      }
      if (this.#phase !== "running" || child.removing) return;
      let running: RunningChild;
      try {
        running = await child.spec.start();
      } catch (startError) {
        error = startError;
        child.lastError = messageOf(startError);
        this.#log.error("Child failed to restart", {
          supervisor: this.name,
          child: id,
          error: serializeError(startError),
        });
        continue;
      }
      child.running = running;
      child.startedAt = this.#clock.now();
      if (this.#phase !== "running" || child.removing) {
        await this.#stopOne(child, child.spec.shutdownMs);
        return;
      }
      child.state = "running";
      this.#watch(child, running);
      return;
    }
  }

  async #giveUp(child: Child, error: unknown): Promise<void> {
    const restarts = this.#restartTimes.length;
    const failure = new SupervisorGaveUpError(this.name, {
      id: child.spec.id,
      restarts,
      periodMs: this.#periodMs,
      error,
    });
    this.#log.critical("Supervisor gave up", {
      supervisor: this.name,
      child: child.spec.id,
      restarts,
      periodMs: this.#periodMs,
      error: serializeError(error),
    });
    child.state = "stopped";
    await this.#shutDown(() => this.#rejectDone(failure), undefined, "failed");
  }

  /** Stops every child in reverse start order, then settles `done` through `settle`. */
  #shutDown(
    settle: () => void,
    deadlineMs?: number,
    phase: "stopping" | "failed" = "stopping",
  ): Promise<void> {
    if (this.#shutdown) return this.#shutdown;
    this.#phase = phase;
    const deadline = deadlineMs === undefined ? undefined : this.#clock.now() + deadlineMs;
    this.#shutdown = (async () => {
      const children = [...this.#children.values()];
      for (const child of children) child.backoff?.abort();
      for (const child of children.reverse()) {
        const left = deadline === undefined ? Infinity : Math.max(0, deadline - this.#clock.now());
        await this.#stopOne(child, Math.min(child.spec.shutdownMs, left));
      }
      if (this.#phase === "stopping") this.#phase = "stopped";
      settle();
    })();
    return this.#shutdown;
  }

  async #stopOne(child: Child, deadlineMs: number): Promise<void> {
    child.backoff?.abort();
    try {
      await child.running.stop(deadlineMs);
    } catch (error) {
      this.#log.error("Child failed to stop", {
        supervisor: this.name,
        child: child.spec.id,
        error: serializeError(error),
      });
    }
    child.state = "stopped";
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
