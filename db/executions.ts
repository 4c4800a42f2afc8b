/**
 * The executor's writes: an order and everything that follows from a broker's answer (the
 * order's new state, its fills, the position, the round-trip trade, the signal's state and the
 * journal) are written in ONE transaction, so the record never shows half of a fill.
 */
import type { OrderStatus } from "../brokers/broker.ts";
import type { Db, Queryable, Tx } from "./client.ts";
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
 * is not claimable (finished, or claimed elsewhere).
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
    `WITH claimed AS (
       UPDATE signals SET status = CASE WHEN status = 'accepted' THEN 'executing' ELSE status END,
              dispatched_at = COALESCE(dispatched_at, $2)
       WHERE id = $1 AND status = ANY($3::text[])
       RETURNING ${SIGNAL_ROW_COLUMNS}
     )
     SELECT c.*,
            COALESCE((SELECT kill_switch FROM broker_accounts WHERE id = $4), true) AS "accountKillSwitch",
            COALESCE((SELECT (value ->> 'enabled')::boolean FROM settings WHERE key = 'kill_switch'), false)
              AS "globalKillSwitch",
            ${CLAIMED_ORDER}
     FROM claimed c LEFT JOIN orders o ON o.client_order_id = c.id::text`,
    [signalId, now, states, accountId],
  );
  if (!row) return null;
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

/** Open orders of an account (not yet terminal), oldest first. */
export function openOrders(db: Queryable, accountId: string): Promise<OrderRow[]> {
  return db.query<OrderRow & Record<string, unknown>>(
    `SELECT ${ORDER} FROM orders o WHERE o.account_id = $1 AND o.status IN ('new', 'pending', 'partially_filled')
     ORDER BY o.created_at, o.id`,
    [accountId],
  );
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
           opened_at = CASE WHEN positions.quantity = 0 THEN EXCLUDED.opened_at ELSE positions.opened_at END`,
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
