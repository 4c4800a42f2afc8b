/**
 * The executors, one per broker account, started on demand under their own supervisor. The
 * registry is the only way to reach one; it refuses accounts that do not exist, so a bad id can
 * never put a crash-looping child under the supervisor.
 *
 * An executor reads its account (settings, credentials) once, when it starts. After a change,
 * `reload` retires the running one gracefully — it finishes the mail it has, in-flight orders
 * included — and the next `ensure` starts a fresh one on the new account row.
 */
import { getAccount } from "../db/executions.ts";
import type { Logger } from "../lib/log.ts";
import { type Actor, type ActorRef, createActor } from "./actor.ts";
import {
  executorBehavior,
  type ExecutorCommand,
  type ExecutorDeps,
  type ExecutorStatus,
} from "./executor.ts";
import type { Supervisor } from "./supervisor.ts";

/** Options of {@linkcode ExecutorRegistry}. */
export interface ExecutorRegistryOptions {
  deps: ExecutorDeps;
  log: Logger;
  /** Mailbox capacity of each executor. */
  capacity?: number;
  shutdownMs?: number;
}

/** Starts and finds executors by broker account id. */
export class ExecutorRegistry {
  #options: ExecutorRegistryOptions;
  #supervisor?: Supervisor;
  #actors = new Map<string, Actor<ExecutorCommand>>();
  #starting = new Map<string, Promise<ActorRef<ExecutorCommand> | null>>();
  /** Executors being retired by `reload`; a start for the account waits for its stop. */
  #stopping = new Map<string, Promise<void>>();

  constructor(options: ExecutorRegistryOptions) {
    this.#options = options;
  }

  /**
   * Hands the registry the (new) supervisor its executors run under; called on every start of
   * that supervisor, so after a restart executors are started afresh under the new one.
   */
  attach(supervisor: Supervisor): void {
    this.#supervisor = supervisor;
    this.#actors.clear();
  }

  /** The executor of `accountId`, started if needed; null when the account does not exist. */
  ensure(accountId: string): Promise<ActorRef<ExecutorCommand> | null> {
    const running = this.#actors.get(accountId);
    if (running) return Promise.resolve(running.ref);
    let starting = this.#starting.get(accountId);
    if (!starting) {
      const stopping = this.#stopping.get(accountId);
      starting = (stopping ? stopping.then(() => this.#start(accountId)) : this.#start(accountId))
        .finally(() => this.#starting.delete(accountId));
      this.#starting.set(accountId, starting);
    }
    return starting;
  }

  /**
   * Retires the executor of `accountId`, if one runs, so that the next {@linkcode ensure} starts
   * it afresh from the account's current row (new credentials, risk limits, symbols…, or no
   * executor at all once the account is deleted). From the moment this is called `ensure` no
   * longer hands out the old executor; the old one runs what is already in its mailbox (paper
   * signals set aside for a batch included) within `shutdownMs`, then stops. Resolves once it
   * has stopped. Signals told to it in between are refused and picked up again by ingest.
   */
  reload(accountId: string): Promise<void> {
    const previous = this.#stopping.get(accountId);
    const starting = this.#starting.get(accountId);
    const running = this.#actors.get(accountId);
    // At once: from here on, ensure waits for this stop instead of using the old executor.
    this.#actors.delete(accountId);
    const stopping = (async () => {
      await previous;
      if (running) await this.#retire(accountId, running);
      if (!starting) return;
      // A start under way finishes first, so that what it started is retired too.
      await starting.catch(() => null);
      const started = this.#actors.get(accountId);
      if (!started) return;
      this.#actors.delete(accountId);
      await this.#retire(accountId, started);
    })().finally(() => {
      if (this.#stopping.get(accountId) === stopping) this.#stopping.delete(accountId);
    });
    this.#stopping.set(accountId, stopping);
    return stopping;
  }

  async #retire(accountId: string, actor: Actor<ExecutorCommand>): Promise<void> {
    const { log } = this.#options;
    try {
      // A flush behind everything queued runs the paper signals set aside for a batch; once the
      // actor is stopping, its own flush message would be refused.
      await actor.ref.tell({ type: "flush" }).catch(() => {});
      await this.#supervisor?.stopChild(`executor:${accountId}`);
      log.info("Executor retired to pick up a changed account", { account_id: accountId });
    } catch (error) {
      // The supervisor restarted meanwhile (and forgot its children): nothing left to stop.
      log.warning("Cannot retire executor", {
        account_id: accountId,
        error: (error as Error).message,
      });
    }
  }

  async #start(accountId: string): Promise<ActorRef<ExecutorCommand> | null> {
    const { deps, log } = this.#options;
    const supervisor = this.#supervisor;
    if (!supervisor) {
      throw new Error("Cannot start an executor: the executor supervisor is not running");
    }
    if (!(await getAccount(deps.db, accountId))) return null;
    const actor = createActor(`executor:${accountId}`, executorBehavior(accountId, deps), {
      capacity: this.#options.capacity ?? 10_000,
      log: log.child("executor", { account_id: accountId }),
      clock: deps.clock,
    });
    await supervisor.startChild({
      id: `executor:${accountId}`,
      start: () => actor.run(),
      restart: "permanent",
      shutdownMs: this.#options.shutdownMs ?? 5_000,
    });
    this.#actors.set(accountId, actor);
    return actor.ref;
  }

  /** Every running executor's status (accounts whose executor does not answer in time are skipped). */
  async statuses(timeoutMs = 1_000): Promise<ExecutorStatus[]> {
    const all = await Promise.allSettled(
      [...this.#actors.values()].map((a) =>
        a.ref.ask<ExecutorStatus>((reply) => ({ type: "status", reply }), { timeoutMs })
      ),
    );
    return all.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  }

  /** Mailbox sizes by account, for health and metrics. */
  mailboxes(): Record<string, number> {
    return Object.fromEntries([...this.#actors].map(([id, a]) => [id, a.mailboxSize]));
  }
}
