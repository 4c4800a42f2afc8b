/**
 * Ingest routes accepted signals to their account's executor. The webhook route has already
 * validated, deduplicated and committed the signal; ingest only has to make sure it runs:
 * at start it re-dispatches everything accepted but unfinished (recovery), and a sweep every few
 * seconds catches a signal whose dispatch was lost (a full mailbox, a crash between commit and tell)
 * and deletes dedup rows whose window has closed.
 */
import { type Db, isDbUnavailable } from "../db/client.ts";
import { setSignalStatus } from "../db/executions.ts";
import { purgeExpiredDedup, unfinishedSignals } from "../db/signals.ts";
import type { Clock } from "../lib/clock.ts";
import { serializeError } from "../lib/log.ts";
import { type ActorContext, ActorStoppedError, type Behavior } from "./actor.ts";
import type { ExecutorRegistry } from "./executors.ts";

/** What ingest can be told. */
export type IngestCommand =
  | {
    type: "dispatch";
    signalId: string;
    accountId: string | null;
    recovering?: boolean;
    attempt?: number;
  }
  | { type: "price"; accountId: string; symbol: string; price: string; at: number }
  | Sweep;

type Sweep = { type: "sweep" };

/** What ingest needs. */
export interface IngestDeps {
  db: Db;
  clock: Clock;
  registry: ExecutorRegistry;
  /** How often lost dispatches are looked for (default 5 s); 0 disables the sweep. */
  sweepIntervalMs?: number;
}

interface State {
  timer?: ReturnType<typeof setInterval>;
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
      const state: State = {};
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
          for (const s of stale) {
            if (s.status === "accepted") {
              await dispatch({ type: "dispatch", signalId: s.id, accountId: s.accountId }, ctx);
            }
          }
          // Closed dedup windows are only reused when the same key repeats; drop the rest.
          const purged = await purgeExpiredDedup(deps.db, new Date(deps.clock.now()));
          if (purged > 0) ctx.log.debug("Purged closed dedup windows", { count: purged });
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
      if (isDbUnavailable(error)) throw error;
      ctx.log.error("Cannot dispatch signal", {
        signal_id: msg.signalId,
        error: serializeError(error),
      });
    }
  }
}
