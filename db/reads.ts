/**
 * The read side of the API: signals, orders, fills, positions and trades as their owner sees
 * them. Every query is scoped by `user_id`, so another user's row is simply not found. Rows come
 * back as API views: snake_case fields, numerics as strings, timestamps as ISO strings.
 *
 * Lists page newest first with an opaque cursor: base64url of the last row's exact
 * (timestamp, id), so a page never repeats or skips a row even when timestamps tie.
 */
import type { Queryable, Row } from "./client.ts";
import { isUuid } from "./users.ts";

/** Largest page a list returns. */
export const MAX_PAGE_SIZE = 200;
/** Page size when the client gives none. */
export const DEFAULT_PAGE_SIZE = 50;

/** Where a page starts: strictly after this (timestamp, id), in descending order. */
export interface Cursor {
  /** The exact timestamp (microseconds, UTC) of the last row of the previous page. */
  at: string;
  id: string;
}

/** One page of a list. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** Filters shared by every list. */
export interface PageFilter {
  limit?: number;
  cursor?: Cursor;
}

/** Filters of {@linkcode listSignals}. */
export interface SignalFilter extends PageFilter {
  status?: string;
  symbol?: string;
  /** Account alias. */
  account?: string;
  /** Received at or after. */
  since?: Date;
  /** Received before. */
  until?: Date;
}

/** Filters of {@linkcode listOrders}. */
export interface OrderFilter extends PageFilter {
  status?: string;
  symbol?: string;
  account?: string;
}

/** Filters of {@linkcode listTrades}. */
export interface TradeFilter extends PageFilter {
  status?: "open" | "closed";
  symbol?: string;
  account?: string;
}

type Iso = string;
type Decimal = string;

/** A signal as listed. */
export interface SignalView {
  id: string;
  status: string;
  reason: string | null;
  source: string;
  account: string | null;
  account_id: string | null;
  ticker: string | null;
  symbol: string | null;
  action: string | null;
  side: string | null;
  quantity: Decimal | null;
  order_type: string | null;
  time_in_force: string | null;
  price: Decimal | null;
  limit_price: Decimal | null;
  stop_price: Decimal | null;
  take_profit: Decimal | null;
  stop_loss: Decimal | null;
  sender_id: string | null;
  /** The signal this one is the entry of, when a flip was split (see db/executions.ts). */
  parent_signal_id: string | null;
  /** The entry this signal was split into, when it was a flip the broker cannot do in one order. */
  entry_signal_id: string | null;
  strategy: unknown;
  comment: string | null;
  signal_time: Iso | null;
  received_at: Iso;
  accepted_at: Iso | null;
  dispatched_at: Iso | null;
  ordered_at: Iso | null;
  filled_at: Iso | null;
  finished_at: Iso | null;
}

/** A journal entry. */
export interface JournalView {
  id: number;
  event: string;
  account_id: string | null;
  order_id: string | null;
  data: unknown;
  at: Iso;
}

/** An order as listed. */
export interface OrderView {
  id: string;
  account: string;
  account_id: string;
  signal_id: string | null;
  parent_id: string | null;
  leg: string;
  client_order_id: string;
  broker_order_id: string | null;
  symbol: string;
  side: string;
  quantity: Decimal;
  order_type: string;
  time_in_force: string;
  limit_price: Decimal | null;
  stop_price: Decimal | null;
  status: string;
  broker_status: string | null;
  filled_quantity: Decimal;
  average_fill_price: Decimal | null;
  reason: string | null;
  status_history: unknown;
  created_at: Iso;
  updated_at: Iso;
}

/** A fill. */
export interface FillView {
  id: string;
  order_id: string;
  broker_fill_id: string;
  symbol: string;
  side: string;
  quantity: Decimal;
  price: Decimal;
  fee: Decimal;
  filled_at: Iso;
}

/** A signal with what happened to it. */
export interface SignalDetail extends SignalView {
  /** The body as received, with the webhook key blanked out. */
  raw_body: string;
  journal: JournalView[];
  orders: OrderView[];
}

/** An order with its fills. */
export interface OrderDetail extends OrderView {
  fills: FillView[];
}

/** An open position. */
export interface PositionView {
  account: string;
  account_id: string;
  symbol: string;
  quantity: Decimal;
  average_price: Decimal;
  realized_pnl: Decimal;
  last_price: Decimal | null;
  opened_at: Iso | null;
  updated_at: Iso;
}

/** A round trip. */
export interface TradeView {
  id: string;
  account: string;
  account_id: string;
  symbol: string;
  direction: string;
  quantity: Decimal;
  entry_price: Decimal;
  exit_price: Decimal | null;
  stop_loss: Decimal | null;
  realized_pnl: Decimal;
  fees: Decimal;
  status: string;
  entry_signal_id: string | null;
  exit_signal_id: string | null;
  opened_at: Iso;
  closed_at: Iso | null;
}

const EXACT_UTC = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;
const CURSOR_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** Encodes a cursor as an opaque base64url string. */
export function encodeCursor(cursor: Cursor): string {
  const json = JSON.stringify([cursor.at, cursor.id]);
  return btoa(json).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Decodes a cursor made by {@linkcode encodeCursor}; null when it is not one. */
export function decodeCursor(text: string): Cursor | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return null;
  try {
    const value: unknown = JSON.parse(atob(text.replaceAll("-", "+").replaceAll("_", "/")));
    if (!Array.isArray(value) || value.length !== 2) return null;
    const [at, id] = value;
    if (typeof at !== "string" || typeof id !== "string") return null;
    if (!CURSOR_AT.test(at) || Number.isNaN(Date.parse(at)) || !isUuid(id)) return null;
    return { at, id };
  } catch {
    return null;
  }
}

const SIGNAL_COLUMNS = `s.id, s.status, s.reason, s.source,
  COALESCE(a.alias, s.account_alias) AS account, s.account_id, s.ticker, s.symbol, s.action,
  s.side, s.quantity, s.order_type, s.time_in_force, s.price, s.limit_price, s.stop_price,
  s.take_profit, s.stop_loss, s.sender_id, s.parent_signal_id,
  (SELECT e.id FROM signals e WHERE e.parent_signal_id = s.id) AS entry_signal_id, s.strategy, s.comment, s.signal_time, s.received_at,
  s.accepted_at, s.dispatched_at, s.ordered_at, s.filled_at, s.finished_at`;
const SIGNAL_FROM =
  `signals s LEFT JOIN broker_accounts a ON a.id = s.account_id AND a.user_id = s.user_id`;

const ORDER_COLUMNS = `o.id, a.alias AS account, o.account_id, o.signal_id, o.parent_id, o.leg,
  o.client_order_id, o.broker_order_id, o.symbol, o.side, o.quantity, o.order_type,
  o.time_in_force, o.limit_price, o.stop_price, o.status, o.broker_status, o.filled_quantity,
  o.average_fill_price, o.reason, o.status_history, o.created_at, o.updated_at`;
const ORDER_FROM = `orders o JOIN broker_accounts a ON a.id = o.account_id`;

const TRADE_COLUMNS = `t.id, a.alias AS account, t.account_id, t.symbol, t.direction,
  t.quantity, t.entry_price, t.exit_price, t.stop_loss, t.realized_pnl, t.fees, t.status,
  t.entry_signal_id, t.exit_signal_id, t.opened_at, t.closed_at`;
const TRADE_FROM = `trades t JOIN broker_accounts a ON a.id = t.account_id`;

/** The signals of `userId`, newest first. */
export function listSignals(
  db: Queryable,
  userId: string,
  filter: SignalFilter = {},
): Promise<Page<SignalView>> {
  const where = new Where(userId, "s.user_id");
  if (filter.status !== undefined) where.add("s.status = ?", filter.status);
  if (filter.symbol !== undefined) where.add("(s.symbol = ? OR s.ticker = ?)", filter.symbol);
  if (filter.account !== undefined) {
    where.add("COALESCE(a.alias, s.account_alias) = ?", filter.account);
  }
  if (filter.since !== undefined) where.add("s.received_at >= ?", filter.since);
  if (filter.until !== undefined) where.add("s.received_at < ?", filter.until);
  return page<SignalView>(db, {
    columns: SIGNAL_COLUMNS,
    from: SIGNAL_FROM,
    where,
    orderBy: "s.received_at",
    idColumn: "s.id",
    filter,
  });
}

/** One signal of `userId` with its journal and orders, or null. */
export async function getSignal(
  db: Queryable,
  userId: string,
  id: string,
): Promise<SignalDetail | null> {
  if (!isUuid(id)) return null;
  const [row] = await db.query(
    `SELECT ${SIGNAL_COLUMNS}, s.raw_body FROM ${SIGNAL_FROM} WHERE s.user_id = $1 AND s.id = $2`,
    [userId, id],
  );
  if (!row) return null;
  const [journal, orders] = await Promise.all([
    db.query(
      `SELECT id, event, account_id, order_id, data, at FROM journal
       WHERE signal_id = $2 AND (user_id = $1 OR user_id IS NULL) ORDER BY id`,
      [userId, id],
    ),
    db.query(
      `SELECT ${ORDER_COLUMNS} FROM ${ORDER_FROM}
       WHERE o.user_id = $1 AND o.signal_id = $2 ORDER BY o.created_at, o.id`,
      [userId, id],
    ),
  ]);
  return {
    ...view<SignalView & { raw_body: string }>(row),
    journal: journal.map((r) => view<JournalView>(r)),
    orders: orders.map((r) => view<OrderView>(r)),
  };
}

/** The orders of `userId`, newest first. */
export function listOrders(
  db: Queryable,
  userId: string,
  filter: OrderFilter = {},
): Promise<Page<OrderView>> {
  const where = new Where(userId, "o.user_id");
  if (filter.status !== undefined) where.add("o.status = ?", filter.status);
  if (filter.symbol !== undefined) where.add("o.symbol = ?", filter.symbol);
  if (filter.account !== undefined) where.add("a.alias = ?", filter.account);
  return page<OrderView>(db, {
    columns: ORDER_COLUMNS,
    from: ORDER_FROM,
    where,
    orderBy: "o.created_at",
    idColumn: "o.id",
    filter,
  });
}

/** One order of `userId` with its fills, or null. */
export async function getOrder(
  db: Queryable,
  userId: string,
  id: string,
): Promise<OrderDetail | null> {
  if (!isUuid(id)) return null;
  const [row] = await db.query(
    `SELECT ${ORDER_COLUMNS} FROM ${ORDER_FROM} WHERE o.user_id = $1 AND o.id = $2`,
    [userId, id],
  );
  if (!row) return null;
  const fills = await db.query(
    `SELECT id, order_id, broker_fill_id, symbol, side, quantity, price, fee, filled_at
     FROM fills WHERE user_id = $1 AND order_id = $2 ORDER BY filled_at, id`,
    [userId, id],
  );
  return { ...view<OrderView>(row), fills: fills.map((r) => view<FillView>(r)) };
}

/** The non-zero positions of `userId`, by account alias and symbol. */
export async function listPositions(db: Queryable, userId: string): Promise<PositionView[]> {
  const rows = await db.query(
    `SELECT a.alias AS account, p.account_id, p.symbol, p.quantity, p.average_price,
            p.realized_pnl, p.last_price, p.opened_at, p.updated_at
     FROM positions p JOIN broker_accounts a ON a.id = p.account_id
     WHERE p.user_id = $1 AND p.quantity <> 0
     ORDER BY a.alias, p.symbol`,
    [userId],
  );
  return rows.map((r) => view<PositionView>(r));
}

/** The trades of `userId`, most recently opened first. */
export function listTrades(
  db: Queryable,
  userId: string,
  filter: TradeFilter = {},
): Promise<Page<TradeView>> {
  const where = new Where(userId, "t.user_id");
  if (filter.status !== undefined) where.add("t.status = ?", filter.status);
  if (filter.symbol !== undefined) where.add("t.symbol = ?", filter.symbol);
  if (filter.account !== undefined) where.add("a.alias = ?", filter.account);
  return page<TradeView>(db, {
    columns: TRADE_COLUMNS,
    from: TRADE_FROM,
    where,
    orderBy: "t.opened_at",
    idColumn: "t.id",
    filter,
  });
}

/** A WHERE clause built from `?` placeholders, numbered as `$n` in order. */
class Where {
  readonly #parts: string[] = [];
  readonly params: unknown[] = [];

  constructor(userId: string, userColumn: string) {
    this.add(`${userColumn} = ?`, userId);
  }

  /**
   * Adds a condition; its `?`s take `values` in order, and any `?` past the last value takes
   * the last one again (so `(a = ? OR b = ?)` needs one value).
   */
  add(condition: string, ...values: unknown[]): void {
    const first = this.params.length + 1;
    this.params.push(...values);
    let i = 0;
    this.#parts.push(
      condition.replace(/\?/g, () => `$${first + Math.min(i++, values.length - 1)}`),
    );
  }

  toString(): string {
    return this.#parts.join(" AND ");
  }
}

async function page<T>(
  db: Queryable,
  query: {
    columns: string;
    from: string;
    where: Where;
    orderBy: string;
    idColumn: string;
    filter: PageFilter;
  },
): Promise<Page<T>> {
  const { where, orderBy, idColumn, filter } = query;
  const limit = Math.min(Math.max(1, Math.floor(filter.limit ?? DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE);
  if (filter.cursor) {
    where.add(
      `(${orderBy}, ${idColumn}) < (?::timestamptz, ?::uuid)`,
      filter.cursor.at,
      filter.cursor.id,
    );
  }
  const rows = await db.query(
    `SELECT ${query.columns},
            to_char(${orderBy} AT TIME ZONE 'UTC', ${EXACT_UTC}) AS _cursor_at
     FROM ${query.from} WHERE ${where}
     ORDER BY ${orderBy} DESC, ${idColumn} DESC LIMIT ${limit + 1}`,
    where.params,
  );
  const more = rows.length > limit;
  const data = more ? rows.slice(0, limit) : rows;
  const last = data.at(-1);
  return {
    data: data.map((r) => view<T>(r)),
    nextCursor: more && last
      ? encodeCursor({ at: String(last._cursor_at), id: String(last.id) })
      : null,
  };
}

/** Dates as ISO strings; the internal cursor column dropped. */
function view<T>(row: Row): T {
  const out: Row = {};
  for (const [key, value] of Object.entries(row)) {
    if (key === "_cursor_at") continue;
    out[key] = value instanceof Date ? value.toISOString() : value;
  }
  return out as T;
}
