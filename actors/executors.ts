/**
 * The executors, one per broker account, started on demand under their own supervisor. The
 * registry is the only way to reach one; it refuses accounts that do not exist, so a bad id can
 * never put a crash-looping child under the supervisor.
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
      starting = this.#start(accountId).finally(() => this.#starting.delete(accountId));
      this.#starting.set(accountId, starting);
    }
    return starting;
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
