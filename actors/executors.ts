/**
 * The executors, one per broker account, started on demand under their own supervisor. The
 * registry is the only way to reach one; it refuses accounts that do not exist, so a bad id can
 * never put a crash-looping child under the supervisor.
 *
 * With several instances on one database each account's executor runs on exactly one of them:
 * starting one takes the lease `executor:<account id>` (db/leases.ts), a keeper renews the
 * leases of running executors, an executor whose lease was lost is retired, and a stopping
 * instance releases its leases so a survivor can take over at once. A dead instance's leases
 * lapse after `ttlMs` and the next dispatch elsewhere takes them.
 *
 * An executor reads its account (settings, credentials) once, when it starts. After a change,
 * `reload` retires the running one gracefully — it finishes the mail it has, in-flight orders
 * included — and the next `ensure` starts a fresh one on the new account row.
 */
import { getAccount } from "../db/executions.ts";
import { acquireLease, releaseLeases, renewLeases } from "../db/leases.ts";
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
  /** Own executors through leases (several instances on one database). */
  lease?: { owner: string; ttlMs?: number };
}

/** Default lease lifetime: a dead owner's accounts move within this (plus a sweep). */
export const EXECUTOR_LEASE_TTL_MS = 10_000;

/** Another live instance runs this account's executor; send the work there. */
export class LeaseHeldElsewhereError extends Error {
  override name = "LeaseHeldElsewhereError";
  readonly accountId: string;
  readonly owner: string;
  constructor(accountId: string, owner: string) {
    super(`Cannot start the executor of "${accountId}": instance "${owner}" runs it`);
    this.accountId = accountId;
    this.owner = owner;
  }
}

/** The lease name of an account's executor. */
export function executorLeaseName(accountId: string): string {
  return `executor:${accountId}`;
}

/** Starts and finds executors by broker account id. */
export class ExecutorRegistry {
  #options: ExecutorRegistryOptions;
  #supervisor?: Supervisor;
  #actors = new Map<string, Actor<ExecutorCommand>>();
  #starting = new Map<string, Promise<ActorRef<ExecutorCommand> | null>>();
  /** Executors being retired by `reload`; a start for the account waits for its stop. */
  #stopping = new Map<string, Promise<void>>();
  /** Accounts another instance owns, until when (ms) to believe it without asking again. */
  #elsewhere = new Map<string, { owner: string; until: number }>();
  #keeper?: ReturnType<typeof setInterval>;

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
    await this.#claim(accountId);
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

  /** Takes the account's lease, or throws {@linkcode LeaseHeldElsewhereError}. */
  async #claim(accountId: string): Promise<void> {
    const lease = this.#options.lease;
    if (!lease) return;
    const known = this.#elsewhere.get(accountId);
    if (known && known.until > Date.now()) {
      throw new LeaseHeldElsewhereError(accountId, known.owner);
    }
    const ttlMs = lease.ttlMs ?? EXECUTOR_LEASE_TTL_MS;
    const holder = await acquireLease(
      this.#options.deps.db,
      executorLeaseName(accountId),
      lease.owner,
      ttlMs,
    );
    if (holder) {
      // Asking again on every signal would cost a query each; a short belief is enough.
      this.#elsewhere.set(accountId, { owner: holder.owner, until: Date.now() + ttlMs / 5 });
      throw new LeaseHeldElsewhereError(accountId, holder.owner);
    }
    this.#elsewhere.delete(accountId);
    this.#startKeeper(lease.owner, ttlMs);
  }

  /** Renews the leases of running executors every third of their lifetime. */
  #startKeeper(owner: string, ttlMs: number) {
    if (this.#keeper !== undefined) return;
    const { deps, log } = this.#options;
    let renewing = false;
    this.#keeper = setInterval(async () => {
      if (renewing) return;
      renewing = true;
      const accounts = [...this.#actors.keys()];
      try {
        const held = await renewLeases(deps.db, accounts.map(executorLeaseName), owner, ttlMs);
        for (const accountId of accounts) {
          if (held.has(executorLeaseName(accountId)) || !this.#actors.has(accountId)) continue;
          log.warning("Executor lease lost to another instance; retiring the executor", {
            account_id: accountId,
          });
          await this.reload(accountId);
        }
      } catch (error) {
        // The database is away: keep running; if the lease lapses meanwhile, the next
        // renewal finds out and retires the executor.
        log.warning("Cannot renew executor leases", { error: (error as Error).message });
      } finally {
        renewing = false;
      }
    }, Math.max(100, Math.floor(ttlMs / 3)));
  }

  /**
   * Stops renewing and gives up every lease this instance holds (after its executors have
   * stopped), so another instance can take the accounts over at once.
   */
  async releaseLeases(): Promise<void> {
    if (this.#keeper !== undefined) clearInterval(this.#keeper);
    this.#keeper = undefined;
    const lease = this.#options.lease;
    if (!lease) return;
    await releaseLeases(this.#options.deps.db, lease.owner);
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
