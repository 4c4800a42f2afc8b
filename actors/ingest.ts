/**
 * Ingest routes accepted signals to their account's executor. The webhook route has already
 * validated, deduplicated and committed the signal; ingest only has to make sure it runs:
 * at start it re-dispatches everything accepted but unfinished (recovery), and a sweep every few
 * seconds catches a signal whose dispatch was lost (a full mailbox, a crash between commit and tell),
 * deletes dedup rows whose window has closed, and warns the owners of webhook keys that expire
 * within a week (once per key, across instances).
 */
import { type Db, isDbUnavailable } from "../db/client.ts";
import { setSignalStatus } from "../db/executions.ts";
import { purgeLapsedLeases } from "../db/leases.ts";
import { purgeLoginThrottle } from "../db/login_throttle.ts";
import { purgeEndedSessions } from "../db/sessions.ts";
import { purgeExpiredDedup, unfinishedSignals } from "../db/signals.ts";
import { warnExpiringWebhookKeys } from "../db/webhook_keys.ts";
import type { Clock } from "../lib/clock.ts";
import type { EventBus } from "../lib/events.ts";
import { serializeError } from "../lib/log.ts";
import { type ActorContext, ActorStoppedError, type Behavior } from "./actor.ts";
import { type ExecutorRegistry, LeaseHeldElsewhereError } from "./executors.ts";

/** What ingest can be told. */
export type IngestCommand =
  | {
    type: "dispatch";
    signalId: string;
    accountId: string | null;
    recovering?: boolean;
    attempt?: number;
    /** Sent here by the instance that received it (never forwarded again). */
    forwarded?: boolean;
  }
  | { type: "price"; accountId: string; symbol: string; price: string; at: number }
  | Sweep;

type Sweep = { type: "sweep" };

/** How often expired sessions and old login failures are deleted. */
const HOUSEKEEPING_MS = 3_600_000;

/** What ingest needs. */
export interface IngestDeps {
  db: Db;
  clock: Clock;
  registry: ExecutorRegistry;
  /** Where `webhook_key.expiring` is published. */
  bus: EventBus;
  /** How often lost dispatches are looked for (default 5 s); 0 disables the sweep. */
  sweepIntervalMs?: number;
  /**
   * Hands a signal to the instance that owns its account's executor (several instances; see
   * actors/executors.ts). Without it, such a signal waits for the owner's own sweep.
   */
  forward?: (signal: { signalId: string; accountId: string }) => Promise<void>;
}

interface State {
  timer?: ReturnType<typeof setInterval>;
  /** Epoch ms of the last hourly housekeeping (0: not yet). */
  housekeptAt: number;
}

/** The ingest behaviour. */
export function ingestBehavior(deps: IngestDeps): Behavior<State, IngestCommand> {
  const sweepMs = deps.sweepIntervalMs ?? 5_000;
  return {
    async init(ctx) {
      const unfinished = await unfinishedSignals(deps.db, {
        olderThan: new Date(deps.clock.now()),
        limit: 100_000,
      });
      if (unfinished.length > 0) {
        ctx.log.info("Recovering unfinished signals", { count: unfinished.length });
      }
      for (const s of unfinished) {
        if (s.status === "accepted") {
          await dispatch({ type: "dispatch", signalId: s.id, accountId: s.accountId }, ctx);
        } else {
          // An executing or placed signal is picked up by its executor's own start-up
          // recovery: starting the executor is enough.
          await dispatch({ type: "dispatch", signalId: s.id, accountId: s.accountId }, ctx, {
            startOnly: true,
          });
        }
      }
      const state: State = { housekeptAt: 0 };
      if (sweepMs > 0) {
        state.timer = setInterval(() => ctx.self.tell({ type: "sweep" }).catch(() => {}), sweepMs);
      }
      return state;
    },

    async receive(state, msg, ctx) {
      switch (msg.type) {
        case "dispatch":
          await dispatch(msg, ctx);
          return state;
        case "price": {
          const executor = await deps.registry.ensure(msg.accountId);
          await executor?.tell({ type: "price", symbol: msg.symbol, price: msg.price, at: msg.at });
          return state;
        }
        case "sweep": {
          const stale = await unfinishedSignals(deps.db, {
            olderThan: new Date(deps.clock.now() - sweepMs),
            limit: 1_000,
          });
          const inFlight = new Set<string>();
          for (const s of stale) {
            if (s.status === "accepted") {
              await dispatch({ type: "dispatch", signalId: s.id, accountId: s.accountId }, ctx);
            } else if (s.accountId) inFlight.add(s.accountId);
          }
          // An executing or placed signal whose account has no executor anywhere (its instance
          // died): starting the executor here runs its start-up recovery. Where one runs (here or
          // on another live instance), this is a no-op.
          for (const accountId of inFlight) {
            await dispatch({ type: "dispatch", signalId: "", accountId }, ctx, { startOnly: true });
          }
          // Closed dedup windows are only reused when the same key repeats; drop the rest.
          const purged = await purgeExpiredDedup(deps.db, new Date(deps.clock.now()));
          if (purged > 0) ctx.log.debug("Purged closed dedup windows", { count: purged });
          await warnExpiringKeys(ctx);
          if (deps.clock.now() - state.housekeptAt >= HOUSEKEEPING_MS) {
            state.housekeptAt = deps.clock.now();
            const ended = await purgeEndedSessions(deps.db, deps.clock.now());
            const throttles = await purgeLoginThrottle(deps.db, deps.clock.now());
            const leases = await purgeLapsedLeases(deps.db);
            if (ended + throttles + leases > 0) {
              ctx.log.debug("Purged ended sessions, old login failures and lapsed leases", {
                sessions_and_tokens: ended,
                login_throttles: throttles,
                leases,
              });
            }
          }
          return state;
        }
        default: {
          const never: never = msg;
          throw new Error(`Cannot handle ingest message ${JSON.stringify(never)}`);
        }
      }
    },

    stop(state) {
      if (state.timer !== undefined) clearInterval(state.timer);
    },
  };

  /** Warns (log and bus) the owners of keys that expire soon; each key once, across instances. */
  async function warnExpiringKeys(ctx: ActorContext<IngestCommand>) {
    const now = new Date(deps.clock.now());
    let expiring;
    try {
      expiring = await warnExpiringWebhookKeys(deps.db, now);
    } catch (error) {
      // Not worth a restart of the signal path; the next sweep tries again.
      if (isDbUnavailable(error)) throw error;
      ctx.log.error("Cannot look for expiring webhook keys", { error: serializeError(error) });
      return;
    }
    for (const key of expiring) {
      const expiresAt = key.expiresAt.toISOString();
      ctx.log.warning("Webhook key expires soon", {
        user_id: key.userId,
        key_id: key.id,
        key_name: key.name,
        key_prefix: key.prefix,
        expires_at: expiresAt,
      });
      deps.bus.publish({
        type: "webhook_key.expiring",
        userId: key.userId,
        at: now.toISOString(),
        data: { key_id: key.id, name: key.name, prefix: key.prefix, expires_at: expiresAt },
      });
    }
  }

  /**
   * Tells the signal's executor (started if needed) to execute it; with `startOnly`, only makes
   * sure the executor runs. A signal whose account is gone is rejected.
   */
  async function dispatch(
    msg: Extract<IngestCommand, { type: "dispatch" }>,
    ctx: ActorContext<IngestCommand>,
    options: { startOnly?: boolean } = {},
  ) {
    try {
      const executor = msg.accountId ? await deps.registry.ensure(msg.accountId) : null;
      if (!executor && msg.signalId === "") return; // a start-only sweep of a deleted account
      if (!executor) {
        await setSignalStatus(
          deps.db,
          msg.signalId,
          "rejected",
          "Cannot execute: the broker account no longer exists",
          new Date(deps.clock.now()),
          {
            userId: null,
            accountId: msg.accountId,
          },
        );
        return;
      }
      if (options.startOnly) return;
      const execute = {
        type: "execute",
        signalId: msg.signalId,
        recovering: msg.recovering ?? false,
        attempt: msg.attempt,
      } as const;
      try {
        await executor.tell(execute);
      } catch (error) {
        // The executor was retired for an account change after we got it: its successor runs
        // the signal (a second refusal is left to the sweep).
        if (!(error instanceof ActorStoppedError) || !msg.accountId) throw error;
        const successor = await deps.registry.ensure(msg.accountId);
        if (successor) await successor.tell(execute);
      }
    } catch (error) {
      if (error instanceof LeaseHeldElsewhereError) {
        // Another instance runs this account: tell it now (its sweep would find it anyway).
        if (!options.startOnly && !msg.forwarded && deps.forward && msg.accountId) {
          await deps.forward({ signalId: msg.signalId, accountId: msg.accountId }).catch(
            (e) => ctx.log.warning("Cannot forward signal", { error: (e as Error).message }),
          );
        }
        return;
      }
      if (isDbUnavailable(error)) throw error;
      ctx.log.error("Cannot dispatch signal", {
        signal_id: msg.signalId,
        error: serializeError(error),
      });
    }
  }
}
