/**
 * The executor: one actor per broker account. It claims an accepted signal, turns it into an
 * order (closing actions follow the open position), checks risk and the circuit breaker, places
 * the order with `client_order_id` = signal id, and records the broker's answer — order, fills,
 * position, trade, signal state, journal — in one transaction, then publishes events.
 *
 * Exactly once: the order row is written before the broker sees the order, and after any crash
 * or ambiguous failure the broker is asked for the order by its client order id before anything
 * is submitted again; brokers refuse a reused client order id.
 *
 * Bracket exit legs are canceled before an order that reduces, closes or flips their position;
 * see {@linkcode LEG_RULE}.
 *
 * Bad input is an answer (a rejected signal with its reason); a dead database is a crash, and
 * the supervisor restarts the executor, whose `init` re-dispatches its unfinished signals.
 */
import type {
  Broker,
  BrokerKind,
  BrokerOrder,
  OrderRequest,
  OrderSide,
} from "../brokers/broker.ts";
import { BrokerError, TERMINAL_STATUSES } from "../brokers/broker.ts";
import { PaperBroker, type RestoredOrder } from "../brokers/paper.ts";
import { type Db, isDbUnavailable } from "../db/client.ts";
import type { BreakerStore } from "../db/breaker_store.ts";
import {
  accountPositions,
  type Claim,
  claimForExecution,
  createOrder,
  createSplitClose,
  endedSignals,
  ExecutionBatches,
  type ExecutorAccount,
  getAccount,
  getOrderByClientOrderId,
  journal,
  lastPrice,
  type NewOrder,
  openOrders,
  type OrderRow,
  type OrderUpdate,
  realizedSince,
  recordOrderUpdate,
  resizeNewOrder,
  setSignalStatus,
  type SettledOrder,
  type SplitEntry,
  splitEntryOf,
  waitingEntries,
} from "../db/executions.ts";
import type { Queue } from "../db/queue.ts";
import { type SignalRow, type SignalStatus, unfinishedSignals } from "../db/signals.ts";
import { CircuitBreaker } from "../lib/circuit_breaker.ts";
import type { Clock } from "../lib/clock.ts";
import type { EventBus, PipelineEventType } from "../lib/events.ts";
import { uuidv7 } from "../lib/ids.ts";
import { serializeError } from "../lib/log.ts";
import { applyFill, FLAT, type Position, toDecimal, unrealizedPnl } from "../lib/positions.ts";
import {
  checkRisk,
  DEFAULT_MAX_SIGNAL_AGE_SECONDS,
  type RiskLimits,
  RiskLimitsSchema,
} from "../lib/risk.ts";
import type { ActorContext, Behavior, Reply } from "./actor.ts";

/** The queue message type that brings a signal back for another attempt. */
export const RETRY_MESSAGE = "executor.retry";

/**
 * LEG_RULE — when the executor cancels the open exit legs of a bracket (its take-profit and
 * stop-loss child orders still working at the broker, once their entry has filled):
 *
 * 1. Before an order that reduces, closes or flips the position on their symbol. The legs hold
 *    the shares that order sells (Alpaca refuses it: 403 "insufficient qty available"), and left
 *    behind they would fire later and open a position nobody asked for.
 * 2. Before any order on a symbol whose position is flat, and whenever the executor sees a flat
 *    position with legs still open (at start, at each poll): they protect nothing.
 *
 * An order that adds to the position in its own direction keeps them. Legs of an entry that is
 * still working belong to that entry and are left alone.
 *
 * The steps, each durable before the next, so that a crash anywhere neither loses nor doubles
 * anything (recovery redoes them by the order's client order id): the new order's row (`new`);
 * each leg canceled at the broker and its final state recorded (a leg that filled in the
 * meantime is recorded as filled); `legs.canceled` journaled; the new order shrunk by what legs
 * filled since it was written ({@linkcode resizeNewOrder}), or closed when nothing is left to
 * do; then the submit. A cancel that fails retryably retries the signal through the durable
 * queue; one the broker refuses rejects the signal, and nothing is submitted.
 */
export const LEG_RULE =
  "cancel open exit legs before an order that reduces, closes or flips their position, or trades a flat one";

/**
 * POSITIONS_RULE — a remote broker's positions are compared with the record every minute.
 * Signals act on the record (a `close` sells what trendedge bought), so a position that differs
 * at the broker — a trade made by hand there, an account used by something else — must not go
 * unnoticed: each difference is logged, journaled as `position.mismatch` and published
 * (the trader is notified) once, until it changes or goes away (`position.matched`). A symbol with
 * an order still working is skipped: its fills may be at the broker before they are here. Nothing
 * is corrected automatically; which side is right is the trader's call.
 */
export const POSITIONS_RULE =
  "compare a remote broker's positions with the record every minute, and report each difference once";

/**
 * Whether a broker takes one order that turns a long into a short or back. Alpaca does not
 * ("insufficient qty available"), so there a flip is split ({@linkcode splitFlip}): the signal's
 * own order closes the position, and an entry signal, written with it in one transaction, opens
 * the new side once the close has ended — if it filled, or nothing is left of the old side, and
 * the entry is still young enough for the risk limits. An entry never splits again: if the
 * position changed under it so that it would flip, it is refused with
 * {@linkcode flipRefusal}'s reason.
 */
export const FLIPS_IN_ONE_ORDER: Readonly<Record<BrokerKind, boolean>> = {
  paper: true,
  alpaca: false,
};

/**
 * Why `request` cannot go to `broker`: it would flip a position the broker does not flip in one
 * order ({@linkcode FLIPS_IN_ONE_ORDER}); null when it can.
 */
export function flipRefusal(
  broker: BrokerKind,
  symbol: string,
  position: number,
  request: { side: OrderSide; quantity: string },
): string | null {
  if (FLIPS_IN_ONE_ORDER[broker] || position === 0) return null;
  const after = position + (request.side === "buy" ? 1 : -1) * Number(request.quantity);
  if (Math.sign(after) !== -Math.sign(position)) return null;
  const held = `${position > 0 ? "long" : "short"} ${toDecimal(Math.abs(position))} ${symbol}`;
  return `Cannot flip the position in one order at ${broker}: you are ${held} and this ${request.side}s ${request.quantity}. Send a close first, then the new entry. Nothing was changed; the open bracket legs stay`;
}

/**
 * A flip that the broker cannot do in one order, in two: the close (the request sized to the
 * position, without the bracket, which belongs to the new side) and the quantity left for the
 * entry. Null when `request` does not flip `position`.
 */
export function splitFlip(
  position: number,
  request: OrderRequest,
): { close: OrderRequest; entryQuantity: string } | null {
  if (position === 0) return null;
  const signed = (request.side === "buy" ? 1 : -1) * Number(request.quantity);
  if (Math.sign(position + signed) !== -Math.sign(position)) return null;
  return {
    close: withoutBracket({ ...request, quantity: toDecimal(Math.abs(position)) }),
    entryQuantity: toDecimal(Math.abs(position + signed)),
  };
}

function withoutBracket(request: OrderRequest): OrderRequest {
  const { takeProfit: _tp, stopLoss: _sl, ...rest } = request;
  return rest;
}

/** True when an order on `side` must first cancel the symbol's exit legs ({@linkcode LEG_RULE}). */
export function cancelsLegs(positionQuantity: number, side: OrderSide): boolean {
  if (positionQuantity === 0) return true;
  return positionQuantity > 0 ? side === "sell" : side === "buy";
}

/** What an executor can be told. */
export type ExecutorCommand =
  | { type: "execute"; signalId: string; recovering: boolean; attempt?: number }
  | { type: "price"; symbol: string; price: string; at: number }
  | { type: "status"; reply: Reply<ExecutorStatus> }
  | Flush
  | Poll
  | Sweep
  | Compare;

/** Runs the fresh signals that `execute` set aside; see {@linkcode MAX_BATCH}. */
type Flush = { type: "flush" };

/** Compares the recorded positions with the broker's ({@linkcode POSITIONS_RULE}). */
type Compare = { type: "compare_positions" };

type Poll = { type: "poll" };

/** Cancels exit legs left open on flat positions ({@linkcode LEG_RULE}, 2). */
type Sweep = { type: "sweep" };

/** An executor as health checks and the API see it. */
export interface ExecutorStatus {
  accountId: string;
  alias: string;
  broker: string;
  breaker: string;
  openOrders: number;
}

/** What an executor needs from the outside world. */
export interface ExecutorDeps {
  db: Db;
  bus: EventBus;
  queue: Queue;
  clock: Clock;
  breakers: BreakerStore;
  /** Builds the broker client of an account (decrypting its credentials at that moment). */
  createBroker(account: ExecutorAccount): Promise<Broker>;
  /** Delays between broker retries: attempt n waits `retryBackoffMs[n-1]` (the last repeats). */
  retryBackoffMs?: number[];
  /** How often open orders at a remote broker are polled. */
  pollIntervalMs?: number;
  /** How often a remote broker's positions are compared with the record (default a minute). */
  comparePositionsMs?: number;
  /** Breaker timings (tests shorten them). */
  breaker?: { failureThreshold?: number; windowMs?: number; cooldownMs?: number };
  /**
   * The batch reads and writes of every executor, shared so that the batches of several
   * accounts go to the database together; without it, each executor's go alone.
   */
  batches?: ExecutionBatches;
  random?: () => number;
}

interface State {
  account: ExecutorAccount;
  broker: Broker;
  breaker: CircuitBreaker;
  positions: Map<string, Position>;
  lastPrices: Map<string, number>;
  /** Open orders by client order id. */
  open: Map<string, OrderRow>;
  /** Start of the UTC day the realized figure covers, and the figure. */
  day: { start: number; realized: number };
  timer?: ReturnType<typeof setInterval>;
  /** The breaker snapshot last written to the store, to skip writes that change nothing. */
  savedBreaker?: string;
  /** Fresh signals (paper accounts) waiting for the next flush, in arrival order. */
  pending: string[];
  /** A flush message is in the mailbox. */
  flushScheduled: boolean;
  /** A timer's poll waits in the mailbox. */
  pollQueued: boolean;
  /** Entries of split flips waiting for their close: close signal id → entry signal id. */
  entries: Map<string, string>;
  /** Positions found different at the broker, already told: symbol → "recorded|at broker". */
  mismatches: Map<string, string>;
  compareTimer?: ReturnType<typeof setInterval>;
  compareQueued: boolean;
}

/** What settling a broker answer in memory produced, to write and then announce. */
interface Settled {
  update: OrderUpdate;
  changed: boolean;
  tradeEvent?: "trade.closed";
}

/** A fresh paper market order, filled in memory, waiting to be written with its batch. */
interface HotFill {
  signal: SignalRow;
  newOrder: NewOrder;
  row: OrderRow;
  createdAt: Date;
  placed: BrokerOrder;
  settled: Settled;
}

/** How a claimed signal of a batch goes on. */
type Prepared =
  | { kind: "hot"; fill: HotFill }
  /** Through the one-by-one path; `primed` when its price was already taken. */
  | { kind: "slow"; primed: boolean }
  /** Placed (and the placing failed, or did not fill at once): one-by-one from the order row. */
  | { kind: "placed"; request: OrderRequest; placing: Promise<BrokerOrder>; maxAgeMs: number }
  | { kind: "error"; error: unknown };

/** A broker call made for an order before it is placed: its journal event and refusal text. */
interface FailedCall {
  event: string;
  refused(order: OrderRow, error: BrokerError): string;
}

const PLACE_FAILED: FailedCall = {
  event: "order.failed",
  refused: (_order, error) => `Broker refused the order: ${error.reason}`,
};

/** Canceling the exit legs in an order's way ({@linkcode LEG_RULE}). */
const LEGS_FAILED: FailedCall = {
  event: "legs.cancel_failed",
  refused: (order, error) =>
    `Cannot cancel the open bracket legs on ${order.symbol} before the order: ${error.reason}; nothing was submitted`,
};

/**
 * Placing an order the exit legs were just canceled for: a refusal leaves the position without
 * them (Alpaca, for one, refuses to flip a position in one order), and the trader must know.
 */
function placeAfterLegsFailed(symbol: string): FailedCall {
  return {
    event: "order.failed",
    refused: (_order, error) =>
      `Broker refused the order: ${error.reason}; the open bracket legs on ${symbol} were canceled before it, so the position has no exit orders at the broker now`,
  };
}

const PLACE_TIMEOUT_MS = 15_000;
/** Reads of a leg whose cancel was accepted, until the broker reports it ended. */
const LEG_END_READS = 5;
const LEG_END_READ_INTERVAL_MS = 200;
/**
 * Most signals one flush claims and writes together. Batches form by themselves: a flush
 * queues behind the executes already in the mailbox, so under load it finds many signals and
 * under light load one (no added latency).
 */
export const MAX_BATCH = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DAY_MS = 86_400_000;

/** The executor behaviour for one account. */
export function executorBehavior(
  accountId: string,
  deps: ExecutorDeps,
): Behavior<State, ExecutorCommand> {
  const { db, clock } = deps;
  const batches = deps.batches ?? new ExecutionBatches(db);
  const backoff = deps.retryBackoffMs ?? [1_000, 2_000, 4_000, 8_000, 16_000, 30_000];
  const random = deps.random ?? Math.random;

  return {
    async init(ctx) {
      const account = await getAccount(db, accountId);
      if (!account) {
        throw new Error(`Cannot start executor: broker account "${accountId}" does not exist`);
      }
      const broker = await deps.createBroker(account);
      const snapshot = await deps.breakers.load(accountId);
      const options = { ...deps.breaker, clock };
      const breaker = snapshot
        ? CircuitBreaker.restore(snapshot, options)
        : new CircuitBreaker(options);
      const positions = new Map<string, Position>();
      const lastPrices = new Map<string, number>();
      for (const p of await accountPositions(db, accountId)) {
        positions.set(p.symbol, {
          quantity: Number(p.quantity),
          averagePrice: Number(p.averagePrice),
          realizedPnl: Number(p.realizedPnl),
        });
        if (p.lastPrice !== null) lastPrices.set(p.symbol, Number(p.lastPrice));
      }
      const open = new Map((await openOrders(db, accountId)).map((o) => [o.clientOrderId, o]));
      if (broker instanceof PaperBroker) {
        const placed = [...open.values()].filter((o) => o.status !== "new" && o.brokerOrderId);
        broker.restore(
          placed.map((o) => toRestoredOrder(o, placed)),
          [...positions].map(([symbol, p]) => ({
            symbol,
            quantity: toDecimal(p.quantity),
            averageEntryPrice: toDecimal(p.averagePrice),
          })),
        );
      }
      const start = dayStart(clock.now());
      const state: State = {
        account,
        broker,
        breaker,
        positions,
        lastPrices,
        open,
        day: { start, realized: await realizedSince(db, accountId, new Date(start)) },
        pending: [],
        flushScheduled: false,
        pollQueued: false,
        entries: await waitingEntries(db, accountId),
        mismatches: new Map(),
        compareQueued: false,
      };
      if (broker.kind !== "paper") {
        state.timer = setInterval(() => {
          // One poll waiting at most: a broker slow for a while gets no burst of them after.
          if (state.open.size === 0 || state.pollQueued) return;
          state.pollQueued = true;
          ctx.self.tell({ type: "poll" }).catch(() => state.pollQueued = false);
        }, deps.pollIntervalMs ?? 2_000);
        state.compareTimer = setInterval(() => {
          if (state.compareQueued) return;
          state.compareQueued = true;
          ctx.self.tell({ type: "compare_positions" }).catch(() => state.compareQueued = false);
        }, deps.comparePositionsMs ?? 60_000);
      }
      // Whatever this account left unfinished (a crash mid-signal) is picked up again: claimed
      // signals to recover, and accepted ones, which a crashed batch had read but not written
      // (told twice, say by ingest at start-up too, a signal still runs once).
      const unfinished = await unfinishedSignals(db, {
        olderThan: new Date(clock.now()),
        limit: 10_000,
      });
      for (const s of unfinished) {
        if (s.accountId !== accountId) continue;
        const recovering = s.status !== "accepted";
        ctx.self.tell({ type: "execute", signalId: s.id, recovering }).catch(() => {});
      }
      // After the recovered signals, which cancel the legs in their own way first.
      ctx.self.tell({ type: "sweep" }).catch(() => {});
      ctx.log.info("Executor started", {
        account_id: accountId,
        alias: account.alias,
        broker: account.broker,
        open_orders: open.size,
        breaker: breaker.state,
      });
      return state;
    },

    async receive(state, msg, ctx) {
      // Whatever arrived before this message is done before it (the mailbox stays FIFO).
      if (msg.type !== "execute" || !batchable(state, msg)) await flushPending(state, ctx);
      switch (msg.type) {
        case "execute":
          if (batchable(state, msg)) {
            state.pending.push(msg.signalId);
            if (!state.flushScheduled) {
              state.flushScheduled = true;
              // Not awaited: with a full mailbox the tell waits for room, and we are the reader.
              ctx.self.tell({ type: "flush" }).catch(() => {});
            }
            return state;
          }
          await guarded(state, ctx, msg.signalId, () => execute(state, msg, ctx));
          await releaseEntries(state, ctx);
          return state;
        case "flush":
          state.flushScheduled = false; // flushPending above ran the pending signals
          return state;
        case "price":
          await onPrice(state, msg.symbol, Number(msg.price), new Date(msg.at), ctx);
          return state;
        case "poll":
          state.pollQueued = false;
          await poll(state, ctx);
          await sweep(state, ctx);
          await releaseEntries(state, ctx);
          return state;
        case "sweep":
          await sweep(state, ctx);
          return state;
        case "compare_positions":
          state.compareQueued = false;
          await comparePositions(state, ctx);
          return state;
        case "status":
          msg.reply.ok({
            accountId,
            alias: state.account.alias,
            broker: state.account.broker,
            breaker: state.breaker.state,
            openOrders: state.open.size,
          });
          return state;
        default: {
          const never: never = msg;
          throw new Error(`Cannot handle executor message ${JSON.stringify(never)}`);
        }
      }
    },

    stop(state) {
      if (state.timer !== undefined) clearInterval(state.timer);
      if (state.compareTimer !== undefined) clearInterval(state.compareTimer);
    },
  };

  /**
   * Runs one signal; an unexpected error fails that signal loudly instead of crashing the
   * executor (a poison signal must not take the account down), but an unreachable database
   * is a crash: the supervisor restarts us and recovery picks the signal up again.
   */
  async function guarded(
    state: State,
    ctx: ActorContext<ExecutorCommand>,
    signalId: string,
    fn: () => Promise<void>,
  ) {
    try {
      await fn();
    } catch (error) {
      if (isDbUnavailable(error)) throw error;
      ctx.log.error("Signal execution failed", {
        signal_id: signalId,
        error: serializeError(error),
      });
      await finish(
        state,
        signalId,
        "failed",
        "Cannot execute the signal: internal error (logged for the operator)",
        null,
      );
    }
  }

  async function execute(
    state: State,
    msg: Extract<ExecutorCommand, { type: "execute" }>,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    const now = new Date(clock.now());
    const claim = await claimForExecution(db, msg.signalId, accountId, now, {
      recovering: msg.recovering,
    });
    if (!claim) return; // finished, or claimed by another instance
    await executeClaimed(state, msg, claim, now, false, ctx);
  }

  /** Runs a claimed signal one by one; `primed` when its price was already taken. */
  async function executeClaimed(
    state: State,
    msg: Extract<ExecutorCommand, { type: "execute" }>,
    claim: Claim,
    now: Date,
    primed: boolean,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    const { signal } = claim;
    rollDay(state);
    const limits = RiskLimitsSchema.safeParse(state.account.risk ?? {});
    const maxAgeMs = maxAge(limits);
    if (signal.price && signal.symbol && !primed) {
      await onPrice(state, signal.symbol, Number(signal.price), now, ctx);
    }

    // An entry of a split flip, not yet written: may it open the new side? (Once written, it is
    // reconciled like any order: the position may well be its own fill by then.)
    if (signal.parentSignalId && !claim.order) {
      const blocked = await entryBlocked(state, signal);
      if (blocked) {
        await refuse(state, signal, null, blocked, ctx);
        return;
      }
    }
    const existing = claim.order;
    if (existing && existing.status !== "new") {
      await reconcile(state, existing, signal, ctx);
      return;
    }
    if (existing) {
      // Created before a crash or an ambiguous failure: the broker may have it already.
      let atBroker: BrokerOrder | null;
      try {
        atBroker = await lookup(state, existing.clientOrderId);
      } catch (error) {
        if (!(error instanceof BrokerError)) throw error;
        // Unknown is not absent: never submit blindly; the next attempt looks again.
        await attemptFailed(state, existing, signal, msg.attempt ?? 1, maxAgeMs, error, ctx);
        return;
      }
      if (atBroker) {
        await apply(state, existing, atBroker, signal, ctx);
        return;
      }
    }

    const planned = await plan(state, signal, limits, now, claim, existing);
    if ("reject" in planned) {
      await refuse(state, signal, existing, planned.reject, ctx);
      return;
    }
    let request = planned.request;
    let entry: SplitEntry | null = null;
    const flip = refusedFlip(state, request);
    if (flip) {
      // Written before (then it was sized as a close) or an entry itself: never split again.
      const split = existing || signal.parentSignalId
        ? null
        : splitFlip(state.positions.get(request.symbol)?.quantity ?? 0, request);
      if (!split) {
        await refuse(state, signal, existing, flip, ctx);
        return;
      }
      request = split.close;
      entry = { id: uuidv7(clock.now()), quantity: split.entryQuantity };
    } else if (existing && (request.takeProfit || request.stopLoss)) {
      // The close of a split, again after a crash or a retry: its bracket is the entry's.
      if (await splitEntryOf(db, signal.id)) request = withoutBracket(request);
    }
    const gate = state.breaker.tryAcquire();
    if (!gate.allowed) {
      const until = new Date(gate.retryAt).toISOString();
      const reason =
        `Cannot place order: the circuit breaker for "${state.account.alias}" is open until ${until}`;
      ctx.log.error("Signal rejected: breaker open", {
        signal_id: signal.id,
        account_id: accountId,
        open_until: until,
      });
      await refuse(state, signal, existing, reason, ctx);
      return;
    }
    const order = existing ??
      (entry
        ? await split(state, signal, request, entry, now, ctx)
        : (await createOrder(db, newOrderFor(state, signal, request), now)).order);
    const attempt = msg.attempt ?? 1;
    const cleared = await clearLegs(state, order, request, signal, {
      attempt,
      maxAgeMs,
      written: existing !== null,
    }, ctx);
    if (!cleared) return;
    await place(state, order, cleared.request, signal, attempt, maxAgeMs, ctx, {
      call: cleared.legsCanceled ? placeAfterLegsFailed(order.symbol) : PLACE_FAILED,
    });
  }

  /** {@linkcode POSITIONS_RULE}. A failed read is logged and left to the next time. */
  async function comparePositions(state: State, ctx: ActorContext<ExecutorCommand>) {
    let theirs;
    try {
      theirs = await state.broker.positions(AbortSignal.timeout(PLACE_TIMEOUT_MS));
    } catch (error) {
      if (!(error instanceof BrokerError)) throw error;
      ctx.log.warning("Cannot compare positions with the broker now", {
        account_id: accountId,
        error: error.reason,
      });
      return;
    }
    // Alpaca names crypto positions without the slash its orders take (BTCUSD, BTC/USD).
    const key = (symbol: string) => symbol.replace("/", "");
    const atBroker = new Map(theirs.map((p) => [key(p.symbol), Number(p.quantity)]));
    const names = new Map(theirs.map((p) => [key(p.symbol), p.symbol]));
    for (const symbol of state.positions.keys()) names.set(key(symbol), symbol);
    const working = new Set([...state.open.values()].map((o) => key(o.symbol)));
    const at = new Date(clock.now());
    for (const [k, symbol] of names) {
      if (working.has(k)) continue;
      const recorded = state.positions.get(symbol)?.quantity ?? 0;
      const broker = atBroker.get(k) ?? 0;
      const told = state.mismatches.get(symbol);
      if (Math.abs(recorded - broker) < 1e-9) {
        if (told === undefined) continue;
        state.mismatches.delete(symbol);
        ctx.log.info("Position matches the broker again", { account_id: accountId, symbol });
        await journal(db, {
          userId: state.account.userId,
          accountId,
          signalId: null,
          orderId: null,
          event: "position.matched",
          data: { symbol, quantity: toDecimal(recorded) },
          at,
        });
        continue;
      }
      const figures = `${toDecimal(recorded)}|${toDecimal(broker)}`;
      if (told === figures) continue;
      state.mismatches.set(symbol, figures);
      const data = {
        alias: state.account.alias,
        symbol,
        recorded: toDecimal(recorded),
        atBroker: toDecimal(broker),
      };
      ctx.log.warning("Position differs at the broker: signals act on the record", {
        account_id: accountId,
        ...data,
      });
      await journal(db, {
        userId: state.account.userId,
        accountId,
        signalId: null,
        orderId: null,
        event: "position.mismatch",
        data: { symbol, recorded: data.recorded, at_broker: data.atBroker },
        at,
      });
      publish(state, "position.mismatch", data);
    }
  }

  /** Writes a split flip's close and its entry ({@linkcode createSplitClose}); the close's order. */
  async function split(
    state: State,
    signal: SignalRow,
    close: OrderRequest,
    entry: SplitEntry,
    now: Date,
    ctx: ActorContext<ExecutorCommand>,
  ): Promise<OrderRow> {
    const { order, created } = await createSplitClose(
      db,
      newOrderFor(state, signal, close),
      now,
      entry,
    );
    if (!created) return order;
    state.entries.set(signal.id, entry.id);
    ctx.log.info("Flip split into a close and an entry", {
      signal_id: signal.id,
      entry_signal_id: entry.id,
      account_id: accountId,
      symbol: close.symbol,
      close_quantity: close.quantity,
      entry_quantity: entry.quantity,
    });
    publish(state, "signal.received", {
      signalId: entry.id,
      splitFrom: signal.id,
      ticker: signal.ticker,
      symbol: signal.symbol,
      action: signal.action,
      quantity: entry.quantity,
    });
    return order;
  }

  /**
   * Why the entry of a split flip may not open the new side: its close ended without filling
   * and part of the old position is still there. Null when it may go on.
   */
  async function entryBlocked(state: State, signal: SignalRow): Promise<string | null> {
    const [close] = await endedSignals(db, [signal.parentSignalId!]);
    if (!close) return null; // the close is gone (deleted with its data): nothing to wait for
    const left = signal.symbol ? state.positions.get(signal.symbol)?.quantity ?? 0 : 0;
    if (close.status === "filled" || left === 0) return null;
    return `Cannot open the new side: closing the position first ended ${close.status}${
      close.reason ? ` (${close.reason})` : ""
    }, and ${toDecimal(Math.abs(left))} ${signal.symbol} is still ${
      left > 0 ? "long" : "short"
    }; nothing was sent for this entry`;
  }

  /** Tells the entries whose close has ended to run (one statement while any wait). */
  async function releaseEntries(state: State, ctx: ActorContext<ExecutorCommand>) {
    if (state.entries.size === 0) return;
    for (const close of await endedSignals(db, [...state.entries.keys()])) {
      const entry = state.entries.get(close.id)!;
      state.entries.delete(close.id);
      // Not awaited: with a full mailbox the tell waits for room, and we are the reader. A tell
      // lost here is found by ingest's sweep: the entry is an accepted signal.
      ctx.self.tell({ type: "execute", signalId: entry, recovering: false }).catch(() => {});
    }
  }

  /**
   * The {@linkcode LEG_RULE} before `order` is submitted: cancels the exit legs in its way, then
   * shrinks it by what legs filled since it was written (`written`: in an earlier attempt, so
   * legs may have filled since even when none is open now). Returns the request to submit (and
   * whether legs were canceled for it), or null when the signal was settled here: retried
   * later, refused, or nothing left to do.
   */
  async function clearLegs(
    state: State,
    order: OrderRow,
    request: OrderRequest,
    signal: SignalRow,
    options: { attempt: number; maxAgeMs: number; written: boolean },
    ctx: ActorContext<ExecutorCommand>,
  ): Promise<{ request: OrderRequest; legsCanceled: boolean } | null> {
    const position = state.positions.get(order.symbol)?.quantity ?? 0;
    const legs = cancelsLegs(position, order.side) ? exitLegs(state, order.symbol) : [];
    const legsCanceled = legs.length > 0;
    if (!legsCanceled && !options.written) return { request, legsCanceled };
    if (legsCanceled) {
      const why = position === 0
        ? "trades a flat position"
        : `${order.side === "sell" ? "sells" : "buys"} against the ${
          position > 0 ? "long" : "short"
        } position`;
      const { ended, failure } = await cancelLegs(
        state,
        legs,
        `Canceled: order "${order.clientOrderId}" ${why}`,
        ctx,
      );
      const cause = { signalId: signal.id, orderId: order.id, why };
      if (ended.length > 0) await journalLegsCanceled(state, ended, cause, ctx);
      if (failure) {
        await attemptFailed(
          state,
          order,
          signal,
          options.attempt,
          options.maxAgeMs,
          failure,
          ctx,
          LEGS_FAILED,
        );
        return null;
      }
    }
    const size = await resizeNewOrder(db, order, {
      reason: `exit legs on ${order.symbol} filled before they could be canceled`,
      at: new Date(clock.now()),
    });
    if (!size) return { request, legsCanceled };
    if (Number(size.quantity) === 0) {
      await breakerResult(state, "success", ctx);
      await closeUnplaced(
        state,
        order,
        signal,
        "canceled",
        `Nothing left to ${order.side}: exit legs on ${order.symbol} filled ${
          toDecimal(Number(size.legsFilled))
        } before they could be canceled, which did this order's work`,
        ctx,
        "canceled",
      );
      return null;
    }
    const quantity = toDecimal(Number(size.quantity));
    if (size.changed) {
      ctx.log.warning("Order resized: exit legs filled before they could be canceled", {
        signal_id: signal.id,
        order_id: order.id,
        from: order.quantity,
        to: quantity,
        legs_filled: size.legsFilled,
      });
    }
    order.quantity = quantity;
    return { request: { ...request, quantity }, legsCanceled };
  }

  /**
   * The open exit legs on `symbol` whose entry has filled (an entry still working keeps its
   * legs), oldest first.
   */
  function exitLegs(state: State, symbol: string): OrderRow[] {
    const open = [...state.open.values()];
    const working = new Set(open.map((o) => o.id));
    return open.filter((o) =>
      o.leg !== "entry" && o.symbol === symbol && o.brokerOrderId !== null && o.status !== "new" &&
      (o.parentId === null || !working.has(o.parentId))
    );
  }

  /**
   * Cancels `legs` at the broker and records how each ended: canceled (with `reason`), or
   * filled, wholly or in part, before the cancel landed. Stops at the first failure, retryable
   * (network, 5xx, 429, a cancel not finished yet) or final (the broker refuses to cancel a leg
   * that is still working); `ended` are the legs done before it.
   */
  async function cancelLegs(
    state: State,
    legs: OrderRow[],
    reason: string,
    ctx: ActorContext<ExecutorCommand>,
  ): Promise<{ ended: OrderRow[]; failure: BrokerError | null }> {
    const ended: OrderRow[] = [];
    const stop = (failure: BrokerError) => ({ ended, failure });
    for (const leg of legs) {
      const id = leg.brokerOrderId!;
      let refused: BrokerError | undefined;
      try {
        await state.broker.cancelOrder(id, AbortSignal.timeout(PLACE_TIMEOUT_MS));
      } catch (error) {
        if (!(error instanceof BrokerError)) throw error;
        if (error.retryable) return stop(error);
        refused = error; // perhaps it filled or ended meanwhile: its state says
      }
      let end: BrokerOrder;
      try {
        end = await legEnd(state, id, refused === undefined);
      } catch (error) {
        if (!(error instanceof BrokerError)) throw error;
        return stop(error.retryable ? error : refused ?? error);
      }
      if (!TERMINAL_STATUSES.has(end.status)) {
        return stop(
          refused ?? new BrokerError(
            `Cannot cancel order "${id}": the broker still reports it ${end.brokerStatus}`,
            {
              kind: "unavailable",
              reason: `the ${leg.leg} leg is still ${end.brokerStatus} after its cancel`,
            },
          ),
        );
      }
      // Ours when our cancel did it; one the broker refused ended otherwise (the other leg filled).
      if (end.status === "canceled" && !refused) end.reason = reason;
      await apply(state, leg, end, null, ctx);
      ended.push(leg);
    }
    return { ended, failure: null };
  }

  /** A leg's state after its cancel; an accepted cancel is read again until the leg ends. */
  async function legEnd(state: State, id: string, canceling: boolean): Promise<BrokerOrder> {
    for (let read = 1;; read++) {
      const fresh = await state.broker.getOrder(id, AbortSignal.timeout(PLACE_TIMEOUT_MS));
      if (!canceling || TERMINAL_STATUSES.has(fresh.status) || read >= LEG_END_READS) {
        return fresh;
      }
      await clock.sleep(LEG_END_READ_INTERVAL_MS);
    }
  }

  /** Journals (and logs) the legs that {@linkcode cancelLegs} just ended. */
  async function journalLegsCanceled(
    state: State,
    legs: OrderRow[],
    cause: { signalId: string | null; orderId: string | null; why: string },
    ctx: ActorContext<ExecutorCommand>,
  ) {
    const data = {
      rule: LEG_RULE,
      why: cause.why,
      legs: legs.map((l) => ({
        order_id: l.id,
        client_order_id: l.clientOrderId,
        broker_order_id: l.brokerOrderId,
        leg: l.leg,
        status: l.status,
        filled_quantity: l.filledQuantity,
      })),
    };
    await journal(db, {
      userId: state.account.userId,
      accountId,
      signalId: cause.signalId,
      orderId: cause.orderId,
      event: "legs.canceled",
      data,
      at: new Date(clock.now()),
    });
    ctx.log.info("Bracket legs canceled", {
      account_id: accountId,
      signal_id: cause.signalId,
      why: cause.why,
      legs: legs.map((l) => `${l.leg}:${l.clientOrderId}:${l.status}`),
    });
  }

  /**
   * Cancels exit legs still open on flat positions ({@linkcode LEG_RULE}, 2). A failure is
   * logged and the next sweep tries again; there is no signal to reject.
   */
  async function sweep(state: State, ctx: ActorContext<ExecutorCommand>) {
    if (state.breaker.state !== "closed") return; // the broker is failing: sweep when it answers
    const symbols = new Set(
      [...state.open.values()].filter((o) => o.leg !== "entry").map((o) => o.symbol),
    );
    for (const symbol of symbols) {
      if ((state.positions.get(symbol)?.quantity ?? 0) !== 0) continue;
      const legs = exitLegs(state, symbol);
      if (legs.length === 0) continue;
      const why = "the position is flat: the legs protect nothing";
      const { ended, failure } = await cancelLegs(state, legs, `Canceled: ${why}`, ctx);
      if (ended.length > 0) {
        await journalLegsCanceled(state, ended, { signalId: null, orderId: null, why }, ctx);
      }
      if (failure) {
        ctx.log.warning("Cannot cancel exit legs on a flat position; trying again later", {
          account_id: accountId,
          symbol,
          kind: failure.kind,
          reason: failure.reason,
        });
      }
    }
  }

  function newOrderFor(state: State, signal: SignalRow, request: OrderRequest): NewOrder {
    return {
      id: uuidv7(clock.now()),
      userId: state.account.userId,
      accountId,
      signalId: signal.id,
      parentId: null,
      leg: "entry",
      clientOrderId: signal.id,
      symbol: request.symbol,
      side: request.side,
      quantity: request.quantity,
      orderType: request.type,
      timeInForce: request.timeInForce,
      limitPrice: request.limitPrice ?? null,
      stopPrice: request.stopPrice ?? null,
    };
  }

  /**
   * Fresh signals of a paper account wait for a flush; recovery, retries and remote brokers
   * go one by one.
   */
  function batchable(state: State, msg: Extract<ExecutorCommand, { type: "execute" }>): boolean {
    return !msg.recovering && msg.attempt === undefined && state.broker instanceof PaperBroker &&
      UUID.test(msg.signalId);
  }

  async function flushPending(state: State, ctx: ActorContext<ExecutorCommand>) {
    while (state.pending.length > 0) {
      await runBatch(state, state.pending.splice(0, MAX_BATCH), ctx);
    }
  }

  /**
   * Runs fresh signals as one batch: ONE statement reads them all; the common case (a paper
   * market order without an order row yet) is planned, risk-checked and filled in memory one
   * signal after the other, so each sees the fills before it, and the fills are written
   * together in ONE statement, which is also their claim; every other signal is claimed and
   * goes the one-by-one way, in its turn (the fills before it are written first), so the record
   * is the same as one by one.
   *
   * A failed batch write crashes the executor: memory (positions, the paper book) is ahead of
   * the database, and the restart rebuilds it from the database and runs every unfinished
   * signal again (accepted ones as a batch, claimed ones one by one), so none is half-written
   * or done twice.
   */
  async function runBatch(state: State, told: string[], ctx: ActorContext<ExecutorCommand>) {
    const now = new Date(clock.now());
    const ids = [...new Set(told)]; // a signal told twice (a sweep's re-dispatch) runs once
    // Read, not claimed: the write of the hot fills claims them; the others are claimed below.
    const claims = await batches.read(ids, accountId);
    const run: HotFill[] = [];
    for (const id of ids) {
      const read = claims.get(id);
      if (!read) continue; // finished, or not accepted any more
      let prepared: Prepared;
      try {
        prepared = await prepareHot(state, read, now, ctx);
      } catch (error) {
        prepared = { kind: "error", error };
      }
      if (prepared.kind === "hot") {
        run.push(prepared.fill);
        continue;
      }
      await writeRun(state, run, ctx);
      const claim = await claimForExecution(db, id, accountId, now, { recovering: false });
      if (!claim) {
        // Taken since the read. Harmless unless the paper book already holds its order.
        if (prepared.kind !== "placed") continue;
        throw new Error(`Cannot execute signal "${id}": it changed while it was being placed`);
      }
      const msg = { type: "execute", signalId: id, recovering: false } as const;
      switch (prepared.kind) {
        case "slow":
          await guarded(
            state,
            ctx,
            id,
            () => executeClaimed(state, msg, claim, now, prepared.primed, ctx),
          );
          break;
        case "placed":
          await guarded(state, ctx, id, async () => {
            const { request } = prepared;
            const order = (await createOrder(db, newOrderFor(state, claim.signal, request), now))
              .order;
            await place(
              state,
              order,
              request,
              claim.signal,
              1,
              prepared.maxAgeMs,
              ctx,
              { placing: prepared.placing },
            );
          });
          break;
        case "error":
          await guarded(state, ctx, id, () => Promise.reject(prepared.error));
          break;
      }
    }
    await writeRun(state, run, ctx);
  }

  /**
   * The hot path of a claimed signal: a fresh paper market order, planned, checked and filled
   * in memory. Anything else is left, untouched, to the one-by-one path.
   */
  async function prepareHot(
    state: State,
    claim: Claim,
    now: Date,
    ctx: ActorContext<ExecutorCommand>,
  ): Promise<Prepared> {
    const { signal } = claim;
    const broker = state.broker;
    if (
      !(broker instanceof PaperBroker) || claim.order !== null || signal.orderType !== "market" ||
      signal.takeProfit || signal.stopLoss || !signal.symbol || state.breaker.state !== "closed" ||
      broker.hasResting(signal.symbol)
    ) {
      return { kind: "slow", primed: false };
    }
    rollDay(state);
    const limits = RiskLimitsSchema.safeParse(state.account.risk ?? {});
    // Nothing rests on the symbol, so the price fills nothing and writes nothing.
    if (signal.price) await onPrice(state, signal.symbol, Number(signal.price), now, ctx);
    const planned = await plan(state, signal, limits, now, claim);
    if ("reject" in planned || planned.request.referencePrice === undefined) {
      return { kind: "slow", primed: true };
    }
    const { request } = planned;
    state.breaker.tryAcquire(); // closed: always allowed
    // The paper broker is this process's memory: placing has no side effect outside it, so the
    // order row need not be written before (the exactly-once reason for the 'new' row). If the
    // batch is never written, the executor crashes and its restart rebuilds the paper book from
    // the database, where this order does not exist: recovery places it afresh, once.
    const placing = broker.placeOrder(request);
    const placed = await placing.catch(() => null);
    if (!placed || placed.status !== "filled" || (placed.legs?.length ?? 0) > 0) {
      return { kind: "placed", request, placing, maxAgeMs: maxAge(limits) };
    }
    const newOrder = newOrderFor(state, signal, request);
    const row: OrderRow = {
      id: newOrder.id,
      signalId: newOrder.signalId,
      parentId: null,
      leg: "entry",
      clientOrderId: newOrder.clientOrderId,
      brokerOrderId: null,
      symbol: newOrder.symbol,
      side: newOrder.side,
      quantity: newOrder.quantity,
      orderType: newOrder.orderType,
      timeInForce: newOrder.timeInForce,
      limitPrice: newOrder.limitPrice,
      stopPrice: newOrder.stopPrice,
      status: "new",
      filledQuantity: "0",
      averageFillPrice: null,
    };
    const settled = settle(state, row, placed, signal);
    return {
      kind: "hot",
      fill: { signal, newOrder, row, createdAt: now, placed, settled },
    };
  }

  /** Writes the filled run in one transaction, then announces it signal by signal. */
  async function writeRun(state: State, run: HotFill[], ctx: ActorContext<ExecutorCommand>) {
    if (run.length === 0) return;
    const batch: SettledOrder[] = run.map((f) => ({
      order: f.newOrder,
      createdAt: f.createdAt,
      update: f.settled.update,
    }));
    await batches.write(batch);
    for (const f of run) {
      await breakerResult(state, "success", ctx);
      announce(state, f.row, f.placed, f.settled);
    }
    run.length = 0;
  }

  function maxAge(limits: ReturnType<typeof RiskLimitsSchema.safeParse>): number {
    return (limits.success ? limits.data.max_signal_age_seconds : DEFAULT_MAX_SIGNAL_AGE_SECONDS) *
      1000;
  }

  /**
   * Builds the order a signal asks for and checks it against the account's limits. An order
   * already written for it (`written`, by an earlier attempt) keeps its side and quantity: they
   * were decided against the position of that moment, and may have been resized since.
   */
  async function plan(
    state: State,
    signal: SignalRow,
    limits: ReturnType<typeof RiskLimitsSchema.safeParse>,
    now: Date,
    switches: { accountKillSwitch: boolean; globalKillSwitch: boolean },
    written: OrderRow | null = null,
  ): Promise<{ request: OrderRequest } | { reject: string }> {
    if (!limits.success) {
      return {
        reject: `Cannot check risk: the risk limits of "${state.account.alias}" are invalid`,
      };
    }
    const symbol = signal.symbol;
    if (!symbol) return { reject: "Cannot place order: the signal has no broker symbol" };
    const position = state.positions.get(symbol) ?? FLAT;
    let side = written?.side ?? signal.side;
    let quantity = written?.quantity ?? signal.quantity;
    if (side === null) {
      if (position.quantity === 0) {
        return { reject: `Cannot close ${symbol}: there is no open position` };
      }
      side = position.quantity > 0 ? "sell" : "buy";
      quantity = toDecimal(Math.abs(position.quantity));
    }
    const verdict = checkRisk(limits.data as RiskLimits, {
      now: now.getTime(),
      receivedAt: signal.receivedAt.getTime(),
      globalKillSwitch: switches.globalKillSwitch,
      accountKillSwitch: switches.accountKillSwitch,
      symbol,
      root: rootOf(symbol),
      side,
      quantity: Number(quantity),
      positionQuantity: position.quantity,
      dailyPnl: dailyPnl(state),
    });
    if (!verdict.ok) return { reject: verdict.reason };
    const known = state.lastPrices.get(symbol);
    const reference = signal.price ??
      (known !== undefined ? toDecimal(known) : await lastPrice(db, symbol));
    return {
      request: {
        clientOrderId: signal.id,
        symbol,
        side,
        quantity: quantity!,
        type: signal.orderType,
        timeInForce: signal.symbol?.includes("/") && signal.timeInForce === "day"
          ? "gtc"
          : signal.timeInForce as OrderRequest["timeInForce"],
        limitPrice: signal.limitPrice ?? undefined,
        stopPrice: signal.stopPrice ?? undefined,
        takeProfit: signal.takeProfit ? { limitPrice: signal.takeProfit } : undefined,
        stopLoss: signal.stopLoss ? { stopPrice: signal.stopLoss } : undefined,
        referencePrice: reference ?? undefined,
      },
    };
  }

  async function place(
    state: State,
    order: OrderRow,
    request: OrderRequest,
    signal: SignalRow,
    attempt: number,
    maxAgeMs: number,
    ctx: ActorContext<ExecutorCommand>,
    options: {
      /** The placing already under way (a batch placed the paper order before writing it). */
      placing?: Promise<BrokerOrder>;
      /** How a failure is journaled and told ({@linkcode PLACE_FAILED} by default). */
      call?: FailedCall;
    } = {},
  ) {
    let placed: BrokerOrder;
    try {
      placed = await (options.placing ??
        state.broker.placeOrder(request, AbortSignal.timeout(PLACE_TIMEOUT_MS)));
    } catch (error) {
      if (!(error instanceof BrokerError)) throw error;
      let failure = error;
      if (error.kind === "duplicate" || error.ambiguous) {
        let found: BrokerOrder | null = null;
        try {
          found = await lookup(state, request.clientOrderId);
        } catch (lookupError) {
          if (!(lookupError instanceof BrokerError)) throw lookupError;
          // Whether the order exists is unknown: the next attempt looks it up before any POST.
          failure = lookupError;
        }
        if (found) {
          await breakerResult(state, "success", ctx);
          await apply(state, order, found, signal, ctx);
          return;
        }
      }
      await attemptFailed(state, order, signal, attempt, maxAgeMs, failure, ctx, options.call);
      return;
    }
    await breakerResult(state, "success", ctx);
    await apply(state, order, placed, signal, ctx);
  }

  /**
   * A failed broker call for an order (placing it, or, with {@linkcode LEGS_FAILED}, canceling
   * the legs in its way): journaled, counted by the breaker, retried or final.
   */
  async function attemptFailed(
    state: State,
    order: OrderRow,
    signal: SignalRow,
    attempt: number,
    maxAgeMs: number,
    error: BrokerError,
    ctx: ActorContext<ExecutorCommand>,
    call: FailedCall = PLACE_FAILED,
  ) {
    await journal(db, {
      userId: state.account.userId,
      accountId,
      signalId: signal.id,
      orderId: order.id,
      event: call.event,
      data: { attempt, kind: error.kind, status: error.status ?? null, reason: error.reason },
      at: new Date(clock.now()),
    });
    if (error.retryable || error.kind === "auth") await breakerResult(state, "failure", ctx);
    else await breakerResult(state, "success", ctx); // the broker answered: it is up
    if (error.retryable) {
      await retryLater(state, order, signal, attempt, maxAgeMs, error, ctx);
      return;
    }
    const status: SignalStatus = error.kind === "auth" ? "failed" : "rejected";
    await closeUnplaced(state, order, signal, status, call.refused(order, error), ctx);
  }

  /** Schedules another attempt through the durable queue, unless that would pass the signal's max age. */
  async function retryLater(
    state: State,
    order: OrderRow,
    signal: SignalRow,
    attempt: number,
    maxAgeMs: number,
    error: BrokerError,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    const base = error.retryAfterS !== undefined
      ? error.retryAfterS * 1000
      : backoff[Math.min(attempt, backoff.length) - 1]!;
    const delayMs = Math.round(base * (0.75 + random() * 0.5));
    const deadline = signal.receivedAt.getTime() + maxAgeMs;
    if (clock.now() + delayMs > deadline) {
      await closeUnplaced(
        state,
        order,
        signal,
        "failed",
        `Gave up after ${attempt} attempt(s): ${error.reason}; another attempt would pass the signal's maximum age of ${
          Math.round(maxAgeMs / 1000)
        } s`,
        ctx,
      );
      return;
    }
    ctx.log.warning("Broker call failed; retrying", {
      signal_id: signal.id,
      attempt,
      delay_ms: delayMs,
      kind: error.kind,
      reason: error.reason,
    });
    await deps.queue.enqueue(
      { type: RETRY_MESSAGE, payload: { signalId: signal.id, accountId, attempt: attempt + 1 } },
      { delayMs },
    );
  }

  /**
   * The order never reached the broker: it is rejected (or `orderStatus`), and so is (or fails)
   * the signal.
   */
  async function closeUnplaced(
    state: State,
    order: OrderRow,
    signal: SignalRow,
    status: SignalStatus,
    reason: string,
    ctx: ActorContext<ExecutorCommand>,
    orderStatus: "rejected" | "canceled" = "rejected",
  ) {
    const at = new Date(clock.now());
    await recordOrderUpdate(db, {
      userId: state.account.userId,
      accountId,
      orderId: order.id,
      signalId: signal.id,
      symbol: order.symbol,
      side: order.side,
      status: orderStatus,
      brokerStatus: "not_placed",
      brokerOrderId: order.brokerOrderId,
      filledQuantity: order.filledQuantity,
      averageFillPrice: order.averageFillPrice,
      reason,
      fills: [],
      signalStatus: { status, reason },
      at,
    });
    order.status = orderStatus;
    state.open.delete(order.clientOrderId);
    publish(state, "signal.rejected", { signalId: signal.id, orderId: order.id, reason, status });
    ctx.log.warning("Signal not executed", { signal_id: signal.id, status, reason });
  }

  /** Rejects a signal, and closes the order row an earlier attempt wrote but never placed. */
  /** {@linkcode flipRefusal} for `request` on this account. */
  function refusedFlip(state: State, request: OrderRequest): string | null {
    const position = state.positions.get(request.symbol)?.quantity ?? 0;
    return flipRefusal(state.broker.kind, request.symbol, position, request);
  }

  async function refuse(
    state: State,
    signal: SignalRow,
    existing: OrderRow | null,
    reason: string,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    if (existing) await closeUnplaced(state, existing, signal, "rejected", reason, ctx);
    else await reject(state, signal, reason, ctx);
  }

  async function reject(
    state: State,
    signal: SignalRow,
    reason: string,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    await finish(state, signal.id, "rejected", reason, null);
    ctx.log.info("Signal rejected", { signal_id: signal.id, account_id: accountId, reason });
  }

  async function finish(
    state: State,
    signalId: string,
    status: SignalStatus,
    reason: string,
    orderId: string | null,
  ) {
    await setSignalStatus(db, signalId, status, reason, new Date(clock.now()), {
      userId: state.account.userId,
      accountId,
      orderId,
    });
    publish(state, "signal.rejected", { signalId, reason, status });
  }

  /** Asks the broker for an order by client order id; a failed lookup counts as "unknown". */
  async function lookup(state: State, clientOrderId: string): Promise<BrokerOrder | null> {
    try {
      return await state.broker.getOrderByClientId(
        clientOrderId,
        AbortSignal.timeout(PLACE_TIMEOUT_MS),
      );
    } catch (error) {
      if (!(error instanceof BrokerError)) throw error;
      // Unknown is not "absent": the caller will retry later rather than submit blindly.
      throw new BrokerError(`Cannot look up order "${clientOrderId}": ${error.reason}`, {
        kind: error.kind === "not_found" ? "unavailable" : error.kind,
        reason: error.reason,
        ambiguous: false,
        cause: error,
      });
    }
  }

  /** An order already past `new`: refresh it from the broker when it is still open. */
  async function reconcile(
    state: State,
    order: OrderRow,
    signal: SignalRow,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    if (TERMINAL_STATUSES.has(order.status as BrokerOrder["status"])) {
      const status = signalStatusFor(order.status as BrokerOrder["status"]);
      if (signal.status !== status) {
        await setSignalStatus(db, signal.id, status, null, new Date(clock.now()), {
          userId: state.account.userId,
          accountId,
          orderId: order.id,
        });
      }
      return;
    }
    state.open.set(order.clientOrderId, order);
    if (!order.brokerOrderId) return;
    const fresh = await state.broker.getOrder(order.brokerOrderId).catch(() => null);
    if (fresh) await apply(state, order, fresh, signal, ctx);
  }

  /** Records what the broker says about an order: new fills, position, trade, states, events. */
  async function apply(
    state: State,
    order: OrderRow,
    broker: BrokerOrder,
    signal: SignalRow | null,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    const settled = settle(state, order, broker, signal);
    if (settled.changed) await recordOrderUpdate(db, settled.update);
    announce(state, order, broker, settled);
    for (const leg of broker.legs ?? []) await applyLeg(state, order, leg, ctx);
  }

  /**
   * The in-memory half of {@linkcode apply}: the update to write for a broker answer, with the
   * position, last price and day's P&L already moved by its fill.
   */
  function settle(
    state: State,
    order: OrderRow,
    broker: BrokerOrder,
    signal: SignalRow | null,
  ): Settled {
    const at = broker.updatedAt ?? new Date(clock.now());
    const before = Number(order.filledQuantity);
    const after = Number(broker.filledQuantity);
    const delta = after - before;
    const update: OrderUpdate = {
      userId: state.account.userId,
      accountId,
      orderId: order.id,
      signalId: order.signalId,
      symbol: order.symbol,
      side: order.side,
      status: broker.status,
      brokerStatus: broker.brokerStatus,
      brokerOrderId: broker.id,
      filledQuantity: broker.filledQuantity,
      averageFillPrice: broker.averageFillPrice ?? null,
      reason: broker.reason ?? null,
      fills: [],
      at,
    };
    let tradeEvent: "trade.closed" | undefined;
    if (delta > 0) {
      const total = Number(broker.averageFillPrice ?? 0) * after;
      const previous = Number(order.averageFillPrice ?? 0) * before;
      const price = delta === after ? Number(broker.averageFillPrice) : (total - previous) / delta;
      const fee = before === 0 ? broker.fills.reduce((sum, f) => sum + Number(f.fee), 0) : 0;
      const prior = state.positions.get(order.symbol) ?? FLAT;
      const { position, realized } = applyFill(prior, {
        side: order.side,
        quantity: delta,
        price,
        fee,
      });
      state.positions.set(order.symbol, position);
      state.lastPrices.set(order.symbol, price);
      rollDay(state);
      state.day.realized += realized;
      update.fills.push({
        id: uuidv7(clock.now()),
        brokerFillId: `${broker.id}:${broker.filledQuantity}`,
        quantity: toDecimal(delta),
        price: toDecimal(price),
        fee: toDecimal(fee),
        realizedPnl: toDecimal(realized),
        at,
      });
      update.position = {
        quantity: toDecimal(position.quantity),
        averagePrice: toDecimal(position.averagePrice),
        realizedPnl: toDecimal(position.realizedPnl),
        lastPrice: toDecimal(price),
      };
      update.trade = tradeChange(
        prior,
        position,
        price,
        realized,
        fee,
        order.leg === "entry" ? signal?.stopLoss ?? null : null,
      );
      if (update.trade?.kind === "close" || update.trade?.kind === "flip") {
        tradeEvent = "trade.closed";
      }
    }
    if (order.leg === "entry" && order.signalId) {
      update.signalStatus = {
        status: signalStatusFor(broker.status),
        reason: broker.reason ?? null,
      };
    }
    const changed = delta > 0 || order.status !== broker.status ||
      order.brokerOrderId !== broker.id;
    return { update, changed, tradeEvent };
  }

  /** After the write: the order as the broker has it, and the events of the change. */
  function announce(state: State, order: OrderRow, broker: BrokerOrder, settled: Settled) {
    const { update, changed, tradeEvent } = settled;
    const firstSeen = order.brokerOrderId === null;
    order.status = broker.status;
    order.brokerOrderId = broker.id;
    order.filledQuantity = broker.filledQuantity;
    order.averageFillPrice = broker.averageFillPrice ?? null;
    if (TERMINAL_STATUSES.has(broker.status)) state.open.delete(order.clientOrderId);
    else state.open.set(order.clientOrderId, order);
    if (changed) {
      const data = {
        orderId: order.id,
        signalId: order.signalId,
        clientOrderId: order.clientOrderId,
        symbol: order.symbol,
        side: order.side,
        quantity: order.quantity,
        leg: order.leg,
        broker: state.account.broker,
        status: broker.status,
        filledQuantity: broker.filledQuantity,
        averageFillPrice: broker.averageFillPrice ?? null,
      };
      // The broker's first answer creates the trade; every later change (or a fill in that
      // first answer) updates it; a round trip that closes is announced once more.
      if (firstSeen) publish(state, "trade.created", data);
      if (!firstSeen || update.fills.length > 0) publish(state, "trade.updated", data);
      if (tradeEvent) {
        publish(state, tradeEvent, { ...data, realizedPnl: update.fills[0]?.realizedPnl ?? "0" });
      }
    }
  }

  /** A bracket leg the broker opened: written as a child order the first time it is seen. */
  async function applyLeg(
    state: State,
    parent: OrderRow,
    leg: BrokerOrder,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    let row = state.open.get(leg.clientOrderId) ??
      (await getOrderByClientOrderId(db, leg.clientOrderId));
    if (!row) {
      row = (await createOrder(db, {
        id: uuidv7(clock.now()),
        userId: state.account.userId,
        accountId,
        signalId: parent.signalId,
        parentId: parent.id,
        leg: leg.leg ?? (leg.type === "limit" ? "take_profit" : "stop_loss"),
        clientOrderId: leg.clientOrderId,
        symbol: leg.symbol,
        side: leg.side,
        quantity: leg.quantity,
        orderType: leg.type,
        timeInForce: "gtc",
        limitPrice: leg.limitPrice ?? null,
        stopPrice: leg.stopPrice ?? null,
      }, new Date(clock.now()))).order;
    }
    await apply(state, row, leg, null, ctx);
  }

  /** A new price for a symbol: resting paper orders may fill; positions are marked. */
  async function onPrice(
    state: State,
    symbol: string,
    price: number,
    at: Date,
    ctx: ActorContext<ExecutorCommand>,
  ) {
    state.lastPrices.set(symbol, price);
    if (!(state.broker instanceof PaperBroker)) return;
    for (const changed of state.broker.onPrice(symbol, price, at)) {
      const row = state.open.get(changed.clientOrderId) ??
        (await getOrderByClientOrderId(db, changed.clientOrderId));
      if (!row) {
        const parent = changed.parentClientOrderId
          ? await getOrderByClientOrderId(db, changed.parentClientOrderId)
          : null;
        if (parent) await applyLeg(state, parent, changed, ctx);
        continue;
      }
      await apply(state, row, changed, null, ctx);
    }
  }

  /**
   * Refreshes open orders from a remote broker: ONE listing of its open orders, then a look-up of
   * each tracked order that has left that list (filled, canceled, expired; or past its limit).
   * One request per order and poll would spend Alpaca's 200 requests a minute on a few bracketed
   * positions' resting legs, and the orders a signal needs would meet 429s.
   */
  async function poll(state: State, ctx: ActorContext<ExecutorCommand>) {
    const tracked = [...state.open.values()].filter((o) => o.brokerOrderId);
    if (tracked.length === 0) return;
    let listed: Map<string, BrokerOrder>;
    try {
      const open = await state.broker.openOrders(AbortSignal.timeout(PLACE_TIMEOUT_MS));
      listed = new Map(open.map((o) => [o.id, o]));
    } catch (error) {
      if (!(error instanceof BrokerError)) throw error;
      ctx.log.warning("Cannot list open orders", { reason: error.reason });
      return;
    }
    for (const order of tracked) {
      try {
        const fresh = listed.get(order.brokerOrderId!) ??
          await state.broker.getOrder(order.brokerOrderId!, AbortSignal.timeout(PLACE_TIMEOUT_MS));
        await apply(state, order, fresh, null, ctx);
      } catch (error) {
        if (!(error instanceof BrokerError)) throw error;
        ctx.log.warning("Cannot refresh order", { order_id: order.id, reason: error.reason });
      }
    }
  }

  async function breakerResult(
    state: State,
    result: "success" | "failure",
    ctx: ActorContext<ExecutorCommand>,
  ) {
    const transition = result === "success"
      ? state.breaker.recordSuccess()
      : state.breaker.recordFailure();
    const snapshot = state.breaker.snapshot();
    const saved = JSON.stringify(snapshot);
    if (saved !== state.savedBreaker) {
      await deps.breakers.save(accountId, snapshot);
      state.savedBreaker = saved;
    }
    if (!transition) return;
    const event = transition === "opened" ? "breaker.opened" : "breaker.closed";
    await journal(db, {
      userId: state.account.userId,
      accountId,
      signalId: null,
      orderId: null,
      event,
      data: { alias: state.account.alias },
      at: new Date(clock.now()),
    });
    publish(state, event, { alias: state.account.alias, state: state.breaker.state });
    const fields = { account_id: accountId, alias: state.account.alias };
    if (transition === "opened") {
      ctx.log.error("Circuit breaker opened: broker calls keep failing", fields);
    } else ctx.log.warning("Circuit breaker closed: the broker answers again", fields);
  }

  function publish(state: State, type: PipelineEventType, data: Record<string, unknown>) {
    deps.bus.publish({
      type,
      userId: state.account.userId,
      accountId,
      signalId: typeof data.signalId === "string" ? data.signalId : undefined,
      orderId: typeof data.orderId === "string" ? data.orderId : undefined,
      at: new Date(clock.now()).toISOString(),
      data,
    });
  }

  function rollDay(state: State) {
    const start = dayStart(clock.now());
    if (start !== state.day.start) state.day = { start, realized: 0 };
  }

  function dailyPnl(state: State): number {
    let unrealized = 0;
    for (const [symbol, p] of state.positions) {
      const price = state.lastPrices.get(symbol);
      if (price !== undefined) unrealized += unrealizedPnl(p, price);
    }
    return state.day.realized + unrealized;
  }
}

/** Start (ms) of the UTC day of `now`: daily loss limits reset at 00:00 UTC. */
function dayStart(now: number): number {
  return now - (now % DAY_MS);
}

function signalStatusFor(status: BrokerOrder["status"]): SignalStatus {
  switch (status) {
    case "filled":
      return "filled";
    case "pending":
    case "partially_filled":
      return "placed";
    case "canceled":
    case "expired":
      return "canceled";
    case "rejected":
      return "rejected";
  }
}

/** How a fill changes the round trip: opens, closes, flips or resizes it. */
function tradeChange(
  prior: Position,
  next: Position,
  price: number,
  realized: number,
  fee: number,
  stopLoss: string | null,
): OrderUpdate["trade"] {
  const direction = (q: number) => (q > 0 ? "long" : "short") as "long" | "short";
  if (prior.quantity === 0 && next.quantity !== 0) {
    return {
      kind: "open",
      id: uuidv7(),
      direction: direction(next.quantity),
      quantity: toDecimal(Math.abs(next.quantity)),
      entryPrice: toDecimal(next.averagePrice),
      stopLoss,
    };
  }
  if (prior.quantity !== 0 && next.quantity === 0) {
    return {
      kind: "close",
      exitPrice: toDecimal(price),
      realizedPnl: toDecimal(realized),
      fees: toDecimal(fee),
    };
  }
  if (Math.sign(prior.quantity) !== Math.sign(next.quantity)) {
    return {
      kind: "flip",
      exitPrice: toDecimal(price),
      realizedPnl: toDecimal(realized),
      fees: toDecimal(fee),
      id: uuidv7(),
      direction: direction(next.quantity),
      quantity: toDecimal(Math.abs(next.quantity)),
      entryPrice: toDecimal(next.averagePrice),
    };
  }
  return {
    kind: "resize",
    quantity: toDecimal(Math.abs(next.quantity)),
    entryPrice: toDecimal(next.averagePrice),
    fees: toDecimal(fee),
    realizedPnl: toDecimal(realized),
  };
}

/** The root of a broker symbol, for allowed-symbol checks (`BTC/USD` → `BTC`, `MNQZ6` → `MNQ`). */
function rootOf(symbol: string): string {
  if (symbol.includes("/")) return symbol.split("/")[0]!;
  const future = /^([A-Z0-9]{1,4}?)[FGHJKMNQUVXZ]\d$/.exec(symbol);
  return future ? future[1]! : symbol;
}

/**
 * An open order row as the paper broker takes it back after a restart, with its bracket links:
 * a leg's entry and other leg (from `placed`, the open rows), an entry's legs still to open.
 */
function toRestoredOrder(o: OrderRow, placed: readonly OrderRow[]): RestoredOrder {
  const order: RestoredOrder = toBrokerOrder(o);
  if (o.leg === "entry") {
    if (o.takeProfit) order.takeProfit = { limitPrice: o.takeProfit };
    if (o.stopLoss) order.stopLoss = { stopPrice: o.stopLoss };
    return order;
  }
  if (o.parentClientOrderId) order.parentClientOrderId = o.parentClientOrderId;
  const other = placed.find((p) =>
    p !== o && p.leg !== "entry" && o.parentId !== null && p.parentId === o.parentId
  );
  if (other?.brokerOrderId) order.ocoWith = other.brokerOrderId;
  return order;
}

function toBrokerOrder(o: OrderRow): BrokerOrder {
  return {
    id: o.brokerOrderId!,
    clientOrderId: o.clientOrderId,
    symbol: o.symbol,
    side: o.side,
    quantity: o.quantity,
    type: o.orderType,
    status: o.status === "new" ? "pending" : o.status,
    brokerStatus: o.status,
    filledQuantity: o.filledQuantity,
    averageFillPrice: o.averageFillPrice ?? undefined,
    fills: [],
    limitPrice: o.limitPrice ?? undefined,
    stopPrice: o.stopPrice ?? undefined,
    leg: o.leg === "entry" ? undefined : o.leg,
  };
}
