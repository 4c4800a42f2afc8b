/**
 * The executor's writes: an order and everything that follows from a broker's answer (the
 * order's new state, its fills, the position, the round-trip trade, the signal's state and the
 * journal) are written in ONE transaction, so the record never shows half of a fill.
 */
import type { OrderStatus } from "../brokers/broker.ts";
import { Batcher, type BatcherOptions, type BatchOutcome } from "./batcher.ts";
import { type Db, isDbUnavailable, type Queryable, type Tx } from "./client.ts";
import { SIGNAL_ROW_COLUMNS, type SignalRow, type SignalStatus } from "./signals.ts";

/** A broker account as the executor needs it. */
export interface ExecutorAccount {
  id: string;
  userId: string;
  alias: string;
  broker: "paper" | "alpaca";
  live: boolean;
  credentials: Uint8Array | null;
  symbolMap: Record<string, string>;
  microFutures: boolean;
  risk: unknown;
  paper: unknown;
  killSwitch: boolean;
}

/** Reads a broker account. */
export async function getAccount(db: Queryable, id: string): Promise<ExecutorAccount | null> {
  const [row] = await db.query<ExecutorAccount & Record<string, unknown>>(
    `SELECT id, user_id AS "userId", alias, broker, live, credentials, symbol_map AS "symbolMap",
            micro_futures AS "microFutures", risk, paper, kill_switch AS "killSwitch"
     FROM broker_accounts WHERE id = $1`,
    [id],
  );
  return row ?? null;
}

/** An order row, as the executor tracks it. */
export interface OrderRow {
  id: string;
  signalId: string | null;
  parentId: string | null;
  leg: "entry" | "take_profit" | "stop_loss";
  clientOrderId: string;
  brokerOrderId: string | null;
  symbol: string;
  side: "buy" | "sell";
  quantity: string;
  orderType: "market" | "limit" | "stop" | "stop_limit";
  timeInForce: string;
  limitPrice: string | null;
  stopPrice: string | null;
  status: "new" | OrderStatus;
  filledQuantity: string;
  averageFillPrice: string | null;
  /** A bracket leg's entry, by client order id ({@linkcode openOrders} only). */
  parentClientOrderId?: string | null;
  /** The legs a bracket entry opens when it fills ({@linkcode openOrders} only). */
  takeProfit?: string | null;
  stopLoss?: string | null;
}

const ORDER =
  `o.id, o.signal_id AS "signalId", o.parent_id AS "parentId", o.leg, o.client_order_id AS "clientOrderId",
  o.broker_order_id AS "brokerOrderId", o.symbol, o.side, o.quantity, o.order_type AS "orderType",
  o.time_in_force AS "timeInForce", o.limit_price AS "limitPrice", o.stop_price AS "stopPrice", o.status,
  o.filled_quantity AS "filledQuantity", o.average_fill_price AS "averageFillPrice"`;

/** The order columns of a claim, prefixed so they do not clash with the signal's. */
const CLAIMED_ORDER =
  `o.id AS "order_id", o.signal_id AS "order_signalId", o.parent_id AS "order_parentId",
  o.leg AS "order_leg", o.client_order_id AS "order_clientOrderId", o.broker_order_id AS "order_brokerOrderId",
  o.symbol AS "order_symbol", o.side AS "order_side", o.quantity AS "order_quantity",
  o.order_type AS "order_orderType", o.time_in_force AS "order_timeInForce", o.limit_price AS "order_limitPrice",
  o.stop_price AS "order_stopPrice", o.status AS "order_status", o.filled_quantity AS "order_filledQuantity",
  o.average_fill_price AS "order_averageFillPrice"`;

/**
 * A claim: `set` moves the signals chosen by `where` ($1), stamps their dispatch ($2), and
 * returns each with its order (if one was written) and the kill switches of account $3.
 */
function claimStatement(set: string, where: string): string {
  return `WITH claimed AS (
       UPDATE signals ${set}, dispatched_at = COALESCE(dispatched_at, $2)
       ${where}
       RETURNING ${SIGNAL_ROW_COLUMNS}
     )
     SELECT c.*,
            COALESCE((SELECT kill_switch FROM broker_accounts WHERE id = $3), true) AS "accountKillSwitch",
            COALESCE((SELECT (value ->> 'enabled')::boolean FROM settings WHERE key = 'kill_switch'), false)
              AS "globalKillSwitch",
            ${CLAIMED_ORDER}
     FROM claimed c LEFT JOIN orders o ON o.client_order_id = c.id::text`;
}

/** What the executor learns when it claims a signal: the signal, its order if any, the switches. */
export interface Claim {
  signal: SignalRow;
  order: OrderRow | null;
  accountKillSwitch: boolean;
  globalKillSwitch: boolean;
}

/**
 * Claims a signal for execution in ONE statement: `accepted` → `executing` (or, when
 * recovering, an `executing`/`placed` one as it is), returning it with the order already
 * written for it (after a crash) and the account and global kill switches. Null when the signal
 * is not claimable (finished, claimed elsewhere, or the entry of a split flip whose close has
 * not ended yet: see {@linkcode createSplitClose}).
 */
export async function claimForExecution(
  db: Queryable,
  signalId: string,
  accountId: string,
  now: Date,
  options: { recovering: boolean },
): Promise<Claim | null> {
  const states = options.recovering ? ["accepted", "executing", "placed"] : ["accepted"];
  const [row] = await db.query<Record<string, unknown>>(
    claimStatement(
      "SET status = CASE WHEN status = 'accepted' THEN 'executing' ELSE status END",
      `WHERE id = $1 AND status = ANY($4::text[])
         AND NOT EXISTS (SELECT 1 FROM signals p WHERE p.id = signals.parent_signal_id
                           AND p.status IN ('accepted', 'executing', 'placed'))`,
    ),
    [signalId, now, accountId, states],
  );
  return row ? claimFromRow(row) : null;
}

/**
 * The rows of a small jsonb recordset, which the planner is told are few: a function's rows are
 * guessed at 100, and against a table it believes small (statistics lag a young, fast-growing
 * table, and a prepared statement's generic plan keeps them until the next ANALYZE) it would
 * hash-join them to a seq scan. Two range conditions it cannot estimate make its guess one row,
 * so it looks each one up by index instead — whatever the table's size, a batch costs its size.
 */
export function fewRows(recordset: string): string {
  return `(SELECT * FROM ${recordset} WHERE few.n >= 0 AND few.n < 2147483647)`;
}

/**
 * Reads fresh signals for a batch in ONE statement, without claiming them: the claims of the
 * `accepted` ones (absent: finished, or not this executor's any more), with their order if one
 * was written and the kill switches of `accountId`. The batch's write claims them ({@linkcode
 * recordSettledOrders} fails unless they are still unfinished); a signal that goes the
 * one-by-one way is claimed with {@linkcode claimForExecution} first.
 */
export async function readBatchForExecution(
  db: Queryable,
  signalIds: readonly string[],
  accountId: string,
): Promise<Map<string, Claim>> {
  const [claims] = await readBatchesForExecution(db, [{ signalIds, accountId }]);
  return claims!;
}

/** One executor's batch to read: {@linkcode readBatchForExecution}'s arguments. */
export interface BatchRead {
  signalIds: readonly string[];
  accountId: string;
}

/** {@linkcode readBatchForExecution} for several executors' batches in ONE statement. */
export async function readBatchesForExecution(
  db: Queryable,
  reads: readonly BatchRead[],
): Promise<Map<string, Claim>[]> {
  const input = reads.flatMap((r, batch) =>
    r.signalIds.map((id) => ({ id, batch, account: r.accountId }))
  )
    .map((x, n) => ({ ...x, n }));
  const claims = reads.map(() => new Map<string, Claim>());
  if (input.length === 0) return claims;
  const rows = await db.query<Record<string, unknown>>(
    `SELECT c.*, few.batch AS "readBatch",
            COALESCE((SELECT kill_switch FROM broker_accounts WHERE id = few.account), true) AS "accountKillSwitch",
            COALESCE((SELECT (value ->> 'enabled')::boolean FROM settings WHERE key = 'kill_switch'), false)
              AS "globalKillSwitch",
            ${CLAIMED_ORDER}
     FROM ${
      fewRows("jsonb_to_recordset($1::text::jsonb) AS few(n int, id uuid, batch int, account uuid)")
    } few
     JOIN LATERAL (SELECT ${SIGNAL_ROW_COLUMNS} FROM signals WHERE id = few.id) c ON true
     LEFT JOIN orders o ON o.client_order_id = c.id::text`,
    [JSON.stringify(input)],
  );
  for (const { readBatch, ...row } of rows) {
    const claim = claimFromRow(row);
    // Filtered here, not in SQL: a status condition lets the planner walk the whole
    // signals_unfinished index, dead entries and all, instead of looking the ids up.
    if (claim.signal.status === "accepted") {
      claims[readBatch as number]!.set(claim.signal.id, claim);
    }
  }
  return claims;
}

/**
 * The executors' reads and writes with group commit ({@linkcode Batcher}) across executors: the
 * batches of several accounts that are ready at once are read in one statement and written in
 * one statement (one commit). Each executor still gets exactly its own answer: a write that
 * fails because of one executor's data is retried per executor, so only that one fails; the
 * database unreachable fails them all.
 */
export class ExecutionBatches {
  readonly #reads: Batcher<BatchRead, Map<string, Claim>>;
  readonly #writes: Batcher<readonly SettledOrder[], void>;

  constructor(db: Queryable, options: BatcherOptions = {}) {
    this.#reads = new Batcher(async (reads) => {
      const claims = await readBatchesForExecution(db, reads);
      return claims.map((value) => ({ ok: true, value }));
    }, options);
    this.#writes = new Batcher(async (runs) => {
      try {
        await recordSettledOrders(db, runs.flat());
        return runs.map(() => ({ ok: true, value: undefined }));
      } catch (error) {
        if (runs.length === 1 || isDbUnavailable(error)) throw error;
      }
      const outcomes: BatchOutcome<void>[] = [];
      for (const run of runs) {
        try {
          await recordSettledOrders(db, run);
          outcomes.push({ ok: true, value: undefined });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
      return outcomes;
    }, options);
  }

  /** {@linkcode readBatchForExecution}, with the other executors' reads of the moment. */
  read(signalIds: readonly string[], accountId: string): Promise<Map<string, Claim>> {
    return this.#reads.add({ signalIds, accountId });
  }

  /**
   * {@linkcode recordSettledOrders} for one executor's run, with the other executors' runs of
   * the moment (of other accounts: an executor writes one run at a time).
   */
  write(run: readonly SettledOrder[]): Promise<void> {
    return run.length === 0 ? Promise.resolve() : this.#writes.add(run);
  }
}

function claimFromRow(row: Record<string, unknown>): Claim {
  const signal: Record<string, unknown> = {};
  const order: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (k.startsWith("order_")) order[k.slice(6)] = v;
    else if (k !== "accountKillSwitch" && k !== "globalKillSwitch") signal[k] = v;
  }
  return {
    signal: signal as unknown as SignalRow,
    order: order.id ? order as unknown as OrderRow : null,
    accountKillSwitch: row.accountKillSwitch === true,
    globalKillSwitch: row.globalKillSwitch === true,
  };
}

/** The order with this client order id. */
export async function getOrderByClientOrderId(
  db: Queryable,
  clientOrderId: string,
): Promise<OrderRow | null> {
  const [row] = await db.query<OrderRow & Record<string, unknown>>(
    `SELECT ${ORDER} FROM orders o WHERE o.client_order_id = $1`,
    [clientOrderId],
  );
  return row ?? null;
}

/**
 * Open orders of an account (not yet terminal), oldest first, with their bracket links: a leg's
 * entry, and the legs an entry opens (from its signal), so a restart loses neither.
 */
export function openOrders(db: Queryable, accountId: string): Promise<OrderRow[]> {
  return db.query<OrderRow & Record<string, unknown>>(
    `SELECT ${ORDER}, p.client_order_id AS "parentClientOrderId", s.take_profit AS "takeProfit",
            s.stop_loss AS "stopLoss"
     FROM orders o
     LEFT JOIN orders p ON p.id = o.parent_id
     LEFT JOIN signals s ON s.id = o.signal_id AND o.leg = 'entry'
     WHERE o.account_id = $1 AND o.status IN ('new', 'pending', 'partially_filled')
     ORDER BY o.created_at, o.id`,
    [accountId],
  );
}

/** How {@linkcode resizeNewOrder} left an order. */
export interface Resize {
  /** The quantity to submit now; "0" when the legs did all of the order's work. */
  quantity: string;
  /** The quantity the order was written with. */
  written: string;
  /** What exit legs on the order's symbol and side filled since it was written. */
  legsFilled: string;
  /** This call changed the row (and journaled `order.resized`). */
  changed: boolean;
}

/**
 * Shrinks an order that is written but not placed (`new`) by what the account's bracket exit
 * legs on its symbol and side filled since it was written: those fills did part of its work, so
 * submitting it whole would oversell, or flip a position nobody meant to flip. Idempotent: it
 * starts from the quantity the order was written with (its `order.created` entry) and counts the
 * legs' fills journaled after that entry, so a repeat after a crash lands on the same figure.
 * Journals `order.resized` with `reason` when it changes the row; a result of "0" leaves the row
 * as it is, for the caller to close. Null when the order is not `new`.
 */
export async function resizeNewOrder(
  db: Queryable,
  order: Pick<OrderRow, "id">,
  options: { reason: string; at: Date },
): Promise<Resize | null> {
  const [row] = await db.query<
    { current: string; written: string; filled: string; quantity: string; changed: boolean }
  >(
    `WITH target AS (
       SELECT o.id, o.user_id, o.account_id, o.signal_id, o.quantity AS current, c.written,
              COALESCE((
                SELECT sum((j.data ->> 'quantity')::numeric)
                FROM journal j JOIN orders l ON l.id = j.order_id
                WHERE j.user_id = o.user_id AND j.id > c.journal_id AND j.event = 'order.filled'
                  AND l.account_id = o.account_id AND l.symbol = o.symbol AND l.side = o.side
                  AND l.leg <> 'entry'
              ), 0) AS filled
       FROM orders o
       CROSS JOIN LATERAL (
         SELECT id AS journal_id, (data ->> 'quantity')::numeric AS written FROM journal
         WHERE order_id = o.id AND event = 'order.created' ORDER BY id LIMIT 1
       ) c
       WHERE o.id = $1 AND o.status = 'new'
     ), resized AS (
       UPDATE orders o SET quantity = t.written - t.filled, updated_at = $2
       FROM target t
       WHERE o.id = t.id AND t.written - t.filled > 0 AND t.written - t.filled <> t.current
       RETURNING o.id
     ), journaled AS (
       INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at)
       SELECT t.user_id, t.account_id, t.signal_id, t.id, 'order.resized',
              jsonb_build_object('from', t.current::text, 'to', (t.written - t.filled)::text,
                                 'legs_filled', t.filled::text, 'reason', $3::text), $2
       FROM target t WHERE EXISTS (SELECT 1 FROM resized)
     )
     SELECT t.current::text AS current, t.written::text AS written, t.filled::text AS filled,
            GREATEST(t.written - t.filled, 0)::text AS quantity,
            EXISTS (SELECT 1 FROM resized) AS changed
     FROM target t`,
    [order.id, options.at, options.reason],
  );
  if (!row) return null;
  return {
    quantity: row.quantity,
    written: row.written,
    legsFilled: row.filled,
    changed: row.changed,
  };
}

/** Positions of an account, as stored. */
export function accountPositions(
  db: Queryable,
  accountId: string,
): Promise<
  Array<
    {
      symbol: string;
      quantity: string;
      averagePrice: string;
      realizedPnl: string;
      lastPrice: string | null;
    }
  >
> {
  return db.query(
    `SELECT symbol, quantity, average_price AS "averagePrice", realized_pnl AS "realizedPnl", last_price AS "lastPrice"
     FROM positions WHERE account_id = $1`,
    [accountId],
  );
}

/** P&L realized by the account's fills since `since` (net of fees). */
export async function realizedSince(
  db: Queryable,
  accountId: string,
  since: Date,
): Promise<number> {
  const [row] = await db.query<{ total: string | null }>(
    "SELECT sum(realized_pnl) AS total FROM fills WHERE account_id = $1 AND filled_at >= $2",
    [accountId, since],
  );
  return Number(row?.total ?? 0);
}

/** The last known price of a symbol. */
export async function lastPrice(db: Queryable, symbol: string): Promise<string | null> {
  // The newest of: a price recorded for the symbol (bars), the last price an alert carried.
  const [row] = await db.query<{ price: string }>(
    `SELECT price FROM (
       SELECT price, at FROM last_prices WHERE symbol = $1
       UNION ALL
       (SELECT price, received_at AS at FROM signals WHERE symbol = $1 AND price IS NOT NULL
        ORDER BY received_at DESC LIMIT 1)
     ) known ORDER BY at DESC LIMIT 1`,
    [symbol],
  );
  return row?.price ?? null;
}

/** A new order to write before it is sent to the broker. */
export interface NewOrder {
  id: string;
  userId: string;
  accountId: string;
  signalId: string | null;
  parentId: string | null;
  leg: OrderRow["leg"];
  clientOrderId: string;
  symbol: string;
  side: "buy" | "sell";
  quantity: string;
  orderType: OrderRow["orderType"];
  timeInForce: string;
  limitPrice: string | null;
  stopPrice: string | null;
}

/**
 * Writes the order in state `new` (before the broker sees it) and marks its signal as ordered;
 * returns the existing row instead when the client order id is already known (recovery).
 */
export async function createOrder(
  db: Queryable,
  order: NewOrder,
  now: Date,
): Promise<{ created: boolean; order: OrderRow }> {
  // One statement: the order, the signal's "ordered" stamp and the journal entry commit together.
  const [row] = await db.query<{ inserted: string | null }>(
    `WITH inserted AS (
       INSERT INTO orders (id, user_id, account_id, signal_id, parent_id, leg, client_order_id, symbol, side, quantity,
                           order_type, time_in_force, limit_price, stop_price, status, status_history, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'new',
               jsonb_build_array(jsonb_build_object('status', 'new', 'at', $15::timestamptz)), $15, $15)
       ON CONFLICT (client_order_id) DO NOTHING RETURNING id
     ), stamped AS (
       UPDATE signals SET ordered_at = $15
       WHERE id = $4 AND $6::text = 'entry' AND EXISTS (SELECT 1 FROM inserted)
     ), journaled AS (
       INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at)
       SELECT $2, $3, $4, id, 'order.created', $16::text::jsonb, $15 FROM inserted
     )
     SELECT (SELECT id FROM inserted) AS inserted`,
    [
      order.id,
      order.userId,
      order.accountId,
      order.signalId,
      order.parentId,
      order.leg,
      order.clientOrderId,
      order.symbol,
      order.side,
      order.quantity,
      order.orderType,
      order.timeInForce,
      order.limitPrice,
      order.stopPrice,
      now,
      JSON.stringify({
        client_order_id: order.clientOrderId,
        symbol: order.symbol,
        side: order.side,
        quantity: order.quantity,
        type: order.orderType,
        leg: order.leg,
      }),
    ],
  );
  if (row?.inserted) {
    return {
      created: true,
      order: {
        id: order.id,
        signalId: order.signalId,
        parentId: order.parentId,
        leg: order.leg,
        clientOrderId: order.clientOrderId,
        brokerOrderId: null,
        symbol: order.symbol,
        side: order.side,
        quantity: order.quantity,
        orderType: order.orderType,
        timeInForce: order.timeInForce,
        limitPrice: order.limitPrice,
        stopPrice: order.stopPrice,
        status: "new",
        filledQuantity: "0",
        averageFillPrice: null,
      },
    };
  }
  const existing = await getOrderByClientOrderId(db, order.clientOrderId);
  if (!existing) throw new Error(`Cannot create order "${order.clientOrderId}": it vanished`);
  return { created: false, order: existing };
}

/**
 * The entry half of a split flip: a new signal that opens the new side with `quantity`, written
 * by {@linkcode createSplitClose}.
 */
export interface SplitEntry {
  id: string;
  quantity: string;
}

/**
 * Writes the close half of a flip that the broker cannot do in one order — `order`, the
 * signal's own order, sized to the position — and, in the SAME transaction, the entry half: a
 * signal that copies the parent (its prices, brackets, receipt time, hence its age) with the
 * rest of the quantity, `accepted`, pointing at the parent. That entry cannot be claimed until
 * the parent has ended ({@linkcode claimForExecution}), so a crash anywhere leaves either
 * nothing or both halves, and the entry never runs before its close. Journals `signal.split`
 * on the parent and `signal.accepted` on the entry. Written again (a retry), it changes nothing.
 */
export async function createSplitClose(
  db: Db,
  order: NewOrder,
  now: Date,
  entry: SplitEntry,
): Promise<{ created: boolean; order: OrderRow }> {
  return await db.transaction(async (tx) => {
    const written = await createOrder(tx, order, now);
    if (!written.created) return written;
    const [row] = await tx.query<{ id: string }>(
      `WITH entry AS (
         INSERT INTO signals (id, user_id, account_id, key_id, source, dedup_key, raw_body, account_alias, ticker,
                              symbol, action, side, quantity, order_type, time_in_force, price, limit_price, stop_price,
                              take_profit, stop_loss, sender_id, strategy, comment, signal_time, status, received_at,
                              accepted_at, parent_signal_id)
         SELECT $1, user_id, account_id, key_id, source, 'split:' || id::text, raw_body, account_alias, ticker,
                symbol, action, side, $2::numeric, order_type, time_in_force, price, limit_price, stop_price,
                take_profit, stop_loss, sender_id, strategy, comment, signal_time, 'accepted', received_at,
                $3, id
         FROM signals WHERE id = $4
         RETURNING id, user_id, account_id
       ), journaled AS (
         INSERT INTO journal (user_id, account_id, signal_id, event, data, at)
         SELECT user_id, account_id, $4, 'signal.split',
                jsonb_build_object('entry_signal_id', id, 'close_quantity', $5::text, 'entry_quantity', $2::text), $3
         FROM entry
         UNION ALL
         SELECT user_id, account_id, id, 'signal.accepted',
                jsonb_build_object('split_from', $4::text, 'source', 'split'), $3
         FROM entry
       )
       SELECT id FROM entry`,
      [entry.id, entry.quantity, now, order.signalId, order.quantity],
    );
    if (!row) throw new Error(`Cannot split signal "${order.signalId}": it vanished`);
    return written;
  });
}

/** The entry a signal was split into, if it was (see {@linkcode createSplitClose}). */
export async function splitEntryOf(db: Queryable, signalId: string): Promise<string | null> {
  const [row] = await db.query<{ id: string }>(
    "SELECT id FROM signals WHERE parent_signal_id = $1",
    [signalId],
  );
  return row?.id ?? null;
}

/** The entries of split flips on an account that still wait for their close, by close. */
export async function waitingEntries(
  db: Queryable,
  accountId: string,
): Promise<Map<string, string>> {
  const rows = await db.query<{ id: string; parentId: string }>(
    `SELECT id, parent_signal_id AS "parentId" FROM signals
     WHERE account_id = $1 AND parent_signal_id IS NOT NULL AND status = 'accepted'`,
    [accountId],
  );
  return new Map(rows.map((r) => [r.parentId, r.id]));
}

/** Which of these signals have ended, with their status and reason. */
export async function endedSignals(
  db: Queryable,
  ids: readonly string[],
): Promise<Array<{ id: string; status: SignalStatus; reason: string | null }>> {
  if (ids.length === 0) return [];
  return await db.query<{ id: string; status: SignalStatus; reason: string | null }>(
    `SELECT id, status, reason FROM signals
     WHERE id = ANY($1::uuid[]) AND status NOT IN ('accepted', 'executing', 'placed')`,
    [ids],
  );
}

/** A new fill to record, with the position and P&L it produces (computed by the executor). */
export interface FillRecord {
  id: string;
  brokerFillId: string;
  quantity: string;
  price: string;
  fee: string;
  realizedPnl: string;
  at: Date;
}

/** Everything that follows from one broker answer about one order. */
export interface OrderUpdate {
  userId: string;
  accountId: string;
  orderId: string;
  signalId: string | null;
  symbol: string;
  side: "buy" | "sell";
  status: OrderStatus;
  brokerStatus: string;
  /** Null when the broker never took the order (its id stays unset, like every unplaced order's). */
  brokerOrderId: string | null;
  filledQuantity: string;
  averageFillPrice: string | null;
  reason: string | null;
  fills: FillRecord[];
  /** The position after the fills, when there were any. */
  position?: { quantity: string; averagePrice: string; realizedPnl: string; lastPrice: string };
  /** Round-trip bookkeeping that the fills caused. */
  trade?:
    | {
      kind: "open";
      id: string;
      direction: "long" | "short";
      quantity: string;
      entryPrice: string;
      stopLoss: string | null;
    }
    | { kind: "close"; exitPrice: string; realizedPnl: string; fees: string }
    | {
      kind: "flip";
      exitPrice: string;
      realizedPnl: string;
      fees: string;
      id: string;
      direction: "long" | "short";
      quantity: string;
      entryPrice: string;
    }
    | { kind: "resize"; quantity: string; entryPrice: string; fees: string; realizedPnl: string };
  /** The signal's new state, when this update decides it. */
  signalStatus?: { status: SignalStatus; reason: string | null };
  at: Date;
}

/** Writes one order update in one transaction; returns false when the order is gone. */
export async function recordOrderUpdate(db: Db, u: OrderUpdate): Promise<boolean> {
  return await db.transaction(async (tx) => {
    // The statements are independent of each other's results, so they are sent together and
    // pipelined on the transaction's connection instead of waiting for each round trip.
    const updated = tx.query<{ id: string }>(
      `WITH updated AS (
         UPDATE orders SET status = $2, broker_status = $3, broker_order_id = COALESCE(broker_order_id, $4),
                filled_quantity = $5, average_fill_price = $6, reason = COALESCE($7, reason), updated_at = $8,
                status_history = CASE WHEN status = $2 THEN status_history
                  ELSE status_history || jsonb_build_array(jsonb_build_object('status', $2::text, 'broker_status', $3::text, 'at', $8::timestamptz)) END
         WHERE id = $1 RETURNING id
       ), journaled AS (
         INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at)
         SELECT $9, $10, $11, id, 'order.updated', $12::text::jsonb, $8 FROM updated
       )
       SELECT id FROM updated`,
      [
        u.orderId,
        u.status,
        u.brokerStatus,
        u.brokerOrderId,
        u.filledQuantity,
        u.averageFillPrice,
        u.reason,
        u.at,
        u.userId,
        u.accountId,
        u.signalId,
        JSON.stringify({
          status: u.status,
          broker_status: u.brokerStatus,
          filled_quantity: u.filledQuantity,
          average_fill_price: u.averageFillPrice,
          reason: u.reason,
        }),
      ],
    );
    const rest: Promise<unknown>[] = u.fills.map((f) =>
      tx.query(
        `WITH fill AS (
           INSERT INTO fills (id, order_id, user_id, account_id, broker_fill_id, symbol, side, quantity, price, fee, realized_pnl, filled_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (order_id, broker_fill_id) DO NOTHING RETURNING id
         )
         INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at)
         SELECT $3, $4, $13, $2, 'order.filled', $14::text::jsonb, $12 FROM fill`,
        [
          f.id,
          u.orderId,
          u.userId,
          u.accountId,
          f.brokerFillId,
          u.symbol,
          u.side,
          f.quantity,
          f.price,
          f.fee,
          f.realizedPnl,
          f.at,
          u.signalId,
          JSON.stringify({
            quantity: f.quantity,
            price: f.price,
            fee: f.fee,
            realized_pnl: f.realizedPnl,
          }),
        ],
      )
    );
    if (u.position) {
      rest.push(tx.query(
        `INSERT INTO positions (account_id, symbol, user_id, quantity, average_price, realized_pnl, last_price, opened_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (account_id, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price,
           realized_pnl = EXCLUDED.realized_pnl, last_price = EXCLUDED.last_price, updated_at = EXCLUDED.updated_at,
           opened_at = CASE WHEN positions.quantity = 0 OR positions.quantity * EXCLUDED.quantity < 0
                            THEN EXCLUDED.opened_at ELSE positions.opened_at END`,
        [
          u.accountId,
          u.symbol,
          u.userId,
          u.position.quantity,
          u.position.averagePrice,
          u.position.realizedPnl,
          u.position.lastPrice,
          u.at,
        ],
      ));
    }
    if (u.trade) rest.push(...recordTrade(tx, u));
    if (u.signalId && u.signalStatus) {
      rest.push(
        setSignalStatus(tx, u.signalId, u.signalStatus.status, u.signalStatus.reason, u.at, u),
      );
    }
    const [rows] = await Promise.all([updated, ...rest]);
    return rows.length > 0;
  });
}

/** The trade statements of an update, in the order they must run (a flip closes before it opens). */
function recordTrade(tx: Tx, u: OrderUpdate): Promise<unknown>[] {
  const t = u.trade!;
  const statements: Promise<unknown>[] = [];
  if (t.kind === "close" || t.kind === "flip") {
    statements.push(tx.query(
      `UPDATE trades SET status = 'closed', exit_price = $3, realized_pnl = realized_pnl + $4, fees = fees + $5,
              exit_signal_id = $6, closed_at = $7
       WHERE account_id = $1 AND symbol = $2 AND status = 'open'`,
      [u.accountId, u.symbol, t.exitPrice, t.realizedPnl, t.fees, u.signalId, u.at],
    ));
  }
  if (t.kind === "open" || t.kind === "flip") {
    statements.push(tx.query(
      `INSERT INTO trades (id, user_id, account_id, symbol, direction, quantity, entry_price, stop_loss, status, entry_signal_id, opened_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10)`,
      [
        t.id,
        u.userId,
        u.accountId,
        u.symbol,
        t.direction,
        t.quantity,
        t.entryPrice,
        t.kind === "open" ? t.stopLoss : null,
        u.signalId,
        u.at,
      ],
    ));
  }
  if (t.kind === "resize") {
    statements.push(tx.query(
      `UPDATE trades SET quantity = $3, entry_price = $4, fees = fees + $5, realized_pnl = realized_pnl + $6
       WHERE account_id = $1 AND symbol = $2 AND status = 'open'`,
      [u.accountId, u.symbol, t.quantity, t.entryPrice, t.fees, t.realizedPnl],
    ));
  }
  return statements;
}

/** Moves a signal to `status` (with its reason and timestamps) and journals it. */
export async function setSignalStatus(
  tx: Queryable,
  signalId: string,
  status: SignalStatus,
  reason: string | null,
  at: Date,
  who: { userId: string | null; accountId: string | null; orderId?: string | null },
): Promise<void> {
  const terminal = status === "filled" || status === "rejected" || status === "failed" ||
    status === "canceled";
  await tx.query(
    `WITH changed AS (
       UPDATE signals SET status = $2, reason = COALESCE($3, reason),
              filled_at = CASE WHEN $2 = 'filled' THEN COALESCE(filled_at, $4) ELSE filled_at END,
              finished_at = CASE WHEN $5 THEN COALESCE(finished_at, $4) ELSE finished_at END
       WHERE id = $1 RETURNING id
     )
     INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at)
     SELECT $6, $7, id, $8, $9, $10::text::jsonb, $4 FROM changed`,
    [
      signalId,
      status,
      reason,
      at,
      terminal,
      who.userId,
      who.accountId,
      who.orderId ?? null,
      `signal.${status}`,
      JSON.stringify(reason ? { reason } : {}),
    ],
  );
}

/** Appends one journal entry. */
export async function journal(
  tx: Queryable,
  entry: {
    userId: string | null;
    accountId: string | null;
    signalId: string | null;
    orderId: string | null;
    event: string;
    data: Record<string, unknown>;
    at: Date;
  },
): Promise<void> {
  await tx.query(
    "INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)",
    [
      entry.userId,
      entry.accountId,
      entry.signalId,
      entry.orderId,
      entry.event,
      JSON.stringify(entry.data),
      entry.at,
    ],
  );
}

/** One order that was created and answered in the same breath (the paper broker's market fill). */
export interface SettledOrder {
  /** The order as {@linkcode createOrder} would have written it, at `createdAt`. */
  order: NewOrder;
  createdAt: Date;
  /** What {@linkcode recordOrderUpdate} would have written for the broker's answer. */
  update: OrderUpdate;
}

interface TradeTarget {
  kind: "existing" | "new";
  open: boolean;
  touched: boolean;
  id?: string;
  userId: string;
  accountId: string;
  symbol: string;
  direction?: "long" | "short";
  quantity: string | null;
  entryPrice: string | null;
  stopLoss?: string | null;
  entrySignalId?: string | null;
  openedAt?: Date;
  fees: string[];
  realized: string[];
  exitPrice: string | null;
  exitSignalId: string | null;
  closedAt: Date | null;
}

/**
 * Writes many orders that were created and settled in the executor's memory, in ONE
 * statement of a fixed shape (however many orders; one round trip, one commit): the rows,
 * fills, positions, trades, signal states and journal entries end up exactly as
 * {@linkcode createOrder} followed by {@linkcode recordOrderUpdate} would have left them, one
 * order after the other, in the order given.
 */
export async function recordSettledOrders(
  db: Queryable,
  batch: readonly SettledOrder[],
): Promise<void> {
  if (batch.length === 0) return;
  const iso = (d: Date) => d.toISOString();
  const orders: Record<string, unknown>[] = [];
  const fills: Record<string, unknown>[] = [];
  const signals: Record<string, unknown>[] = [];
  const journal: Record<string, unknown>[] = [];
  const positions = new Map<string, Record<string, unknown>>();
  const existingTrades = new Map<string, TradeTarget>();
  const newTrades: TradeTarget[] = [];
  const log = (
    e: {
      update: OrderUpdate;
      signalId: string | null;
      orderId: string;
      event: string;
      data: unknown;
      at: Date;
    },
  ) =>
    journal.push({
      n: journal.length,
      user_id: e.update.userId,
      account_id: e.update.accountId,
      signal_id: e.signalId,
      order_id: e.orderId,
      event: e.event,
      data: e.data,
      at: iso(e.at),
    });

  for (const { order: o, createdAt, update: u } of batch) {
    if (u.userId !== o.userId || u.accountId !== o.accountId || o.id !== u.orderId) {
      throw new Error("Cannot record settled orders: each order must come with its own update");
    }
    orders.push({
      id: o.id,
      user_id: o.userId,
      account_id: o.accountId,
      signal_id: o.signalId,
      parent_id: o.parentId,
      leg: o.leg,
      client_order_id: o.clientOrderId,
      broker_order_id: u.brokerOrderId,
      symbol: o.symbol,
      side: o.side,
      quantity: o.quantity,
      order_type: o.orderType,
      time_in_force: o.timeInForce,
      limit_price: o.limitPrice,
      stop_price: o.stopPrice,
      status: u.status,
      broker_status: u.brokerStatus,
      filled_quantity: u.filledQuantity,
      average_fill_price: u.averageFillPrice,
      reason: u.reason,
      created_at: iso(createdAt),
      updated_at: iso(u.at),
    });
    // createOrder's journal entry, then recordOrderUpdate's, in the order its statements ran.
    log({
      update: u,
      signalId: o.signalId,
      orderId: o.id,
      event: "order.created",
      data: {
        client_order_id: o.clientOrderId,
        symbol: o.symbol,
        side: o.side,
        quantity: o.quantity,
        type: o.orderType,
        leg: o.leg,
      },
      at: createdAt,
    });
    log({
      update: u,
      signalId: u.signalId,
      orderId: o.id,
      event: "order.updated",
      data: {
        status: u.status,
        broker_status: u.brokerStatus,
        filled_quantity: u.filledQuantity,
        average_fill_price: u.averageFillPrice,
        reason: u.reason,
      },
      at: u.at,
    });
    for (const f of u.fills) {
      fills.push({
        id: f.id,
        order_id: o.id,
        user_id: u.userId,
        account_id: u.accountId,
        broker_fill_id: f.brokerFillId,
        symbol: u.symbol,
        side: u.side,
        quantity: f.quantity,
        price: f.price,
        fee: f.fee,
        realized_pnl: f.realizedPnl,
        filled_at: iso(f.at),
      });
      log({
        update: u,
        signalId: u.signalId,
        orderId: o.id,
        event: "order.filled",
        data: { quantity: f.quantity, price: f.price, fee: f.fee, realized_pnl: f.realizedPnl },
        at: f.at,
      });
    }
    if (u.position) {
      const key = `${u.accountId}\n${u.symbol}`;
      const previous = positions.get(key);
      positions.set(key, {
        account_id: u.accountId,
        user_id: u.userId,
        symbol: u.symbol,
        quantity: u.position.quantity,
        average_price: u.position.averagePrice,
        realized_pnl: u.position.realizedPnl,
        last_price: u.position.lastPrice,
        // recordOrderUpdate moves opened_at when the stored position was flat or the fill
        // crosses zero, which is exactly when the fill opens a round trip or flips into a new
        // one; otherwise the stored value stays.
        opened_at: u.trade?.kind === "open" || u.trade?.kind === "flip"
          ? iso(u.at)
          : previous?.opened_at ?? null,
        updated_at: iso(u.at),
      });
    }
    if (u.trade) settleTrade(u, existingTrades, newTrades);
    const terminal = u.signalStatus && ["filled", "rejected", "failed", "canceled"].includes(
      u.signalStatus.status,
    );
    signals.push({
      id: o.signalId,
      ordered: o.leg === "entry",
      ordered_at: iso(createdAt),
      status: u.signalStatus?.status ?? null,
      reason: u.signalStatus?.reason ?? null,
      terminal: terminal ?? false,
      at: iso(u.at),
    });
    if (u.signalId && u.signalStatus) {
      log({
        update: u,
        signalId: u.signalId,
        orderId: o.id,
        event: `signal.${u.signalStatus.status}`,
        data: u.signalStatus.reason ? { reason: u.signalStatus.reason } : {},
        at: u.at,
      });
    }
  }

  const json = (rows: unknown[]) => JSON.stringify(rows);
  const trade = (t: TradeTarget) => ({
    id: t.id ?? null,
    user_id: t.userId,
    account_id: t.accountId,
    symbol: t.symbol,
    direction: t.direction ?? null,
    quantity: t.quantity,
    entry_price: t.entryPrice,
    stop_loss: t.stopLoss ?? null,
    entry_signal_id: t.entrySignalId ?? null,
    opened_at: t.openedAt ? iso(t.openedAt) : null,
    fees: t.fees,
    realized: t.realized,
    closed: !t.open,
    exit_price: t.exitPrice,
    exit_signal_id: t.exitSignalId,
    closed_at: t.closedAt ? iso(t.closedAt) : null,
  });
  const existing = [...existingTrades.values()].filter((t) => t.touched).map((t, n) => ({
    ...trade(t),
    n,
  }));

  const touched = signals.filter((s) => s.id !== null).map((s, n) => ({ ...s, n }));
  // ONE statement (one round trip, one commit, atomic): each table's rows in one CTE.
  // - Foreign keys (a fill's order) are checked at the end of the statement, so CTE order does not
  //   matter for them; the new trades wait for the stored open trade to be closed (their scalar
  //   subquery reads all of `closed` before the first insert), or the one-open-trade index would
  //   see two open trades.
  // - The signals are looked up by id ({@linkcode fewRows}), never by status: a status condition
  //   lets the planner walk the whole signals_unfinished index, dead entries and all.
  // - They must be unfinished (the executor took them as accepted): if one was finished
  //   meanwhile, memory is ahead of a record that changed under it, so it is given a status the
  //   table's CHECK refuses, which aborts the statement (nothing is written); the caller crashes.
  //   This statement is also its signals' claim: it stamps their dispatch.
  try {
    await db.query(
      `WITH orders_in AS (
         INSERT INTO orders (id, user_id, account_id, signal_id, parent_id, leg, client_order_id, broker_order_id,
                             symbol, side, quantity, order_type, time_in_force, limit_price, stop_price, status,
                             broker_status, filled_quantity, average_fill_price, reason, status_history, created_at,
                             updated_at)
         SELECT x.id, x.user_id, x.account_id, x.signal_id, x.parent_id, x.leg, x.client_order_id, x.broker_order_id,
                x.symbol, x.side,
                x.quantity, x.order_type, x.time_in_force, x.limit_price, x.stop_price, x.status, x.broker_status,
                x.filled_quantity, x.average_fill_price, x.reason,
                CASE WHEN x.status = 'new' THEN jsonb_build_array(jsonb_build_object('status', 'new', 'at', x.created_at))
                  ELSE jsonb_build_array(jsonb_build_object('status', 'new', 'at', x.created_at),
                    jsonb_build_object('status', x.status, 'broker_status', x.broker_status, 'at', x.updated_at)) END,
                x.created_at, x.updated_at
         FROM jsonb_to_recordset($1::text::jsonb) AS x(id uuid, user_id uuid, account_id uuid, signal_id uuid,
                parent_id uuid, leg text,
                client_order_id text, broker_order_id text, symbol text, side text, quantity numeric, order_type text,
                time_in_force text, limit_price numeric, stop_price numeric, status text, broker_status text,
                filled_quantity numeric, average_fill_price numeric, reason text, created_at timestamptz,
                updated_at timestamptz)
       ), fills_in AS (
         INSERT INTO fills (id, order_id, user_id, account_id, broker_fill_id, symbol, side, quantity, price, fee,
                            realized_pnl, filled_at)
         SELECT x.id, x.order_id, x.user_id, x.account_id, x.broker_fill_id, x.symbol, x.side, x.quantity, x.price,
                x.fee, x.realized_pnl, x.filled_at
         FROM jsonb_to_recordset($2::text::jsonb) AS x(id uuid, order_id uuid, user_id uuid, account_id uuid,
                broker_fill_id text, symbol text,
                side text, quantity numeric, price numeric, fee numeric, realized_pnl numeric, filled_at timestamptz)
       ), positions_in AS (
         INSERT INTO positions (account_id, symbol, user_id, quantity, average_price, realized_pnl, last_price,
                                opened_at, updated_at)
         SELECT x.account_id, x.symbol, x.user_id, x.quantity, x.average_price, x.realized_pnl, x.last_price,
                x.opened_at, x.updated_at
         FROM jsonb_to_recordset($3::text::jsonb) AS x(account_id uuid, user_id uuid, symbol text, quantity numeric,
                average_price numeric,
                realized_pnl numeric, last_price numeric, opened_at timestamptz, updated_at timestamptz)
         ON CONFLICT (account_id, symbol) DO UPDATE SET quantity = EXCLUDED.quantity,
           average_price = EXCLUDED.average_price, realized_pnl = EXCLUDED.realized_pnl,
           last_price = EXCLUDED.last_price, updated_at = EXCLUDED.updated_at,
           opened_at = COALESCE(EXCLUDED.opened_at, positions.opened_at)
       ), closed AS (
         UPDATE trades t SET quantity = COALESCE(x.quantity, t.quantity),
                entry_price = COALESCE(x.entry_price, t.entry_price),
                fees = t.fees + (SELECT sum(v::numeric) FROM jsonb_array_elements_text(x.fees) v),
                realized_pnl = t.realized_pnl + (SELECT sum(v::numeric) FROM jsonb_array_elements_text(x.realized) v),
                status = CASE WHEN x.closed THEN 'closed' ELSE t.status END,
                exit_price = CASE WHEN x.closed THEN x.exit_price ELSE t.exit_price END,
                exit_signal_id = CASE WHEN x.closed THEN x.exit_signal_id ELSE t.exit_signal_id END,
                closed_at = CASE WHEN x.closed THEN x.closed_at ELSE t.closed_at END
         FROM ${
        fewRows(
          `jsonb_to_recordset($4::text::jsonb) AS few(n int, account_id uuid, symbol text, quantity numeric,
                entry_price numeric, fees jsonb, realized jsonb, closed boolean, exit_price numeric,
                exit_signal_id uuid, closed_at timestamptz)`,
        )
      } x
         WHERE t.account_id = x.account_id AND t.symbol = x.symbol AND t.status = 'open'
         RETURNING t.id
       ), opened AS (
         INSERT INTO trades (id, user_id, account_id, symbol, direction, quantity, entry_price, stop_loss, status,
                             entry_signal_id, opened_at, realized_pnl, fees, exit_price, exit_signal_id, closed_at)
         SELECT x.id, x.user_id, x.account_id, x.symbol, x.direction, x.quantity, x.entry_price, x.stop_loss,
                CASE WHEN x.closed THEN 'closed' ELSE 'open' END, x.entry_signal_id, x.opened_at,
                0 + COALESCE((SELECT sum(v::numeric) FROM jsonb_array_elements_text(x.realized) v), 0),
                0 + COALESCE((SELECT sum(v::numeric) FROM jsonb_array_elements_text(x.fees) v), 0),
                x.exit_price, x.exit_signal_id, x.closed_at
         FROM jsonb_to_recordset($5::text::jsonb) AS x(id uuid, user_id uuid, account_id uuid, symbol text,
                direction text, quantity numeric,
                entry_price numeric, stop_loss numeric, entry_signal_id uuid, opened_at timestamptz, fees jsonb,
                realized jsonb, closed boolean, exit_price numeric, exit_signal_id uuid, closed_at timestamptz)
         WHERE (SELECT count(*) FROM closed) >= 0
       ), signals_done AS (
         UPDATE signals s SET dispatched_at = COALESCE(s.dispatched_at, x.ordered_at),
                ordered_at = CASE WHEN x.ordered THEN x.ordered_at ELSE s.ordered_at END,
                status = CASE WHEN s.status NOT IN ('accepted', 'executing', 'placed') THEN 'finished already'
                  ELSE COALESCE(x.status, s.status) END,
                reason = CASE WHEN x.status IS NULL THEN s.reason ELSE COALESCE(x.reason, s.reason) END,
                filled_at = CASE WHEN x.status = 'filled' THEN COALESCE(s.filled_at, x.at) ELSE s.filled_at END,
                finished_at = CASE WHEN x.terminal THEN COALESCE(s.finished_at, x.at) ELSE s.finished_at END
         FROM ${
        fewRows(
          `jsonb_to_recordset($6::text::jsonb) AS few(n int, id uuid, ordered boolean, ordered_at timestamptz,
                status text, reason text, terminal boolean, at timestamptz)`,
        )
      } x
         WHERE s.id = x.id
         RETURNING s.id
       ), journal_in AS (
         INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at)
         SELECT x.user_id, x.account_id, x.signal_id, x.order_id, x.event, x.data, x.at
         FROM jsonb_to_recordset($7::text::jsonb) AS x(n int, user_id uuid, account_id uuid, signal_id uuid,
                order_id uuid, event text, data jsonb, at timestamptz)
         ORDER BY x.n
       )
       SELECT (SELECT count(*)::int FROM signals_done) AS signals`,
      [
        json(orders),
        json(fills),
        json([...positions.values()]),
        json(existing),
        json(newTrades.map(trade)),
        json(touched),
        json(journal),
      ],
    );
  } catch (error) {
    const e = error as { code?: unknown; constraint_name?: unknown; constraint?: unknown };
    if (e.code !== "23514" || (e.constraint_name ?? e.constraint) !== "signals_status_check") {
      throw error;
    }
    throw new Error(
      "Cannot record settled orders: some of their signals are finished already",
      { cause: error },
    );
  }
}

/**
 * Replays one update's trade bookkeeping on the batch's picture of the account's trades, the
 * way recordTrade's statements would change the rows one update after the other: a close or a
 * resize applies to every trade open at that moment (the stored one, or one this batch opened).
 */
function settleTrade(
  u: OrderUpdate,
  existing: Map<string, TradeTarget>,
  created: TradeTarget[],
): void {
  const t = u.trade!;
  const key = `${u.accountId}\n${u.symbol}`;
  const mine = (c: TradeTarget) => c.accountId === u.accountId && c.symbol === u.symbol;
  let stored = existing.get(key);
  if (!stored) {
    stored = {
      kind: "existing",
      open: true,
      touched: false,
      userId: u.userId,
      accountId: u.accountId,
      symbol: u.symbol,
      quantity: null,
      entryPrice: null,
      fees: [],
      realized: [],
      exitPrice: null,
      exitSignalId: null,
      closedAt: null,
    };
    existing.set(key, stored);
  }
  const open = [stored, ...created.filter(mine)].filter((c) => c.open);
  if (t.kind === "close" || t.kind === "flip") {
    for (const c of open) {
      c.touched = true;
      c.open = false;
      c.exitPrice = t.exitPrice;
      c.realized.push(t.realizedPnl);
      c.fees.push(t.fees);
      c.exitSignalId = u.signalId;
      c.closedAt = u.at;
    }
  }
  if (t.kind === "open" || t.kind === "flip") {
    created.push({
      kind: "new",
      open: true,
      touched: true,
      id: t.id,
      userId: u.userId,
      accountId: u.accountId,
      symbol: u.symbol,
      direction: t.direction,
      quantity: t.quantity,
      entryPrice: t.entryPrice,
      stopLoss: t.kind === "open" ? t.stopLoss : null,
      entrySignalId: u.signalId,
      openedAt: u.at,
      fees: [],
      realized: [],
      exitPrice: null,
      exitSignalId: null,
      closedAt: null,
    });
  }
  if (t.kind === "resize") {
    for (const c of open) {
      c.touched = true;
      c.quantity = t.quantity;
      c.entryPrice = t.entryPrice;
      c.fees.push(t.fees);
      c.realized.push(t.realizedPnl);
    }
  }
}
