/**
 * Reads for the dashboard's overview: per broker account, what the trader wants at a glance —
 * realized P&L (all time and since a moment, e.g. the start of their day), the unrealized P&L of
 * open positions at the last known price, and the number of open positions. Scoped by user.
 */
import type { Queryable } from "./client.ts";

/** One account's figures. Numbers are decimal strings, as everywhere in the API. */
export interface AccountSummary {
  account_id: string;
  alias: string;
  broker: "paper" | "alpaca";
  live: boolean;
  kill_switch: boolean;
  /** Paper accounts: starting cash from the account's paper settings (default 100,000). */
  starting_cash: string | null;
  realized_total: string;
  realized_since: string;
  unrealized: string;
  open_positions: number;
}

/**
 * The user's accounts with their P&L, oldest account first.
 *
 * @example
 * const [paper] = await accountSummaries(db, userId, startOfDay);
 */
export function accountSummaries(
  db: Queryable,
  userId: string,
  since: Date,
): Promise<AccountSummary[]> {
  return db.query<AccountSummary & Record<string, unknown>>(
    `SELECT a.id::text AS account_id, a.alias, a.broker, a.live, a.kill_switch,
            CASE WHEN a.broker = 'paper'
              THEN COALESCE(a.paper->>'starting_cash', '100000') END AS starting_cash,
            COALESCE(f.total, 0)::text AS realized_total,
            COALESCE(f.since, 0)::text AS realized_since,
            COALESCE(p.unrealized, 0)::text AS unrealized,
            COALESCE(p.open, 0)::int AS open_positions
       FROM broker_accounts a
       LEFT JOIN (
         SELECT account_id, sum(realized_pnl) AS total,
                sum(realized_pnl) FILTER (WHERE filled_at >= $2) AS since
           FROM fills WHERE user_id = $1 GROUP BY account_id
       ) f ON f.account_id = a.id
       LEFT JOIN (
         SELECT account_id,
                sum(quantity * (COALESCE(last_price, average_price) - average_price))
                  AS unrealized,
                count(*) AS open
           FROM positions WHERE user_id = $1 AND quantity <> 0 GROUP BY account_id
       ) p ON p.account_id = a.id
      WHERE a.user_id = $1
      ORDER BY a.created_at, a.alias`,
    [userId, since],
  );
}

/** Midnight of `now` in `zone`, as an instant: when the trader's "today" began. */
export function startOfDay(now: number, zone: string): Date {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    hourCycle: "h23",
  }).formatToParts(new Date(now));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  // The zone's wall-clock time now, read as if it were UTC, minus now: the zone's offset.
  const wall = Date.UTC(
    get("year"),
    get("month") - 1,
    get("day"),
    get("hour"),
    get("minute"),
    get("second"),
  );
  const offset = wall - Math.floor(now / 1000) * 1000;
  const midnightWall = Date.UTC(get("year"), get("month") - 1, get("day"));
  return new Date(midnightWall - offset);
}

/** A signal as the overview's live list shows it, with its entry order's fill. */
export interface RecentSignal {
  id: string;
  status: string;
  reason: string | null;
  account: string | null;
  symbol: string | null;
  ticker: string | null;
  action: string | null;
  quantity: string | null;
  received_at: string;
  finished_at: string | null;
  order_status: string | null;
  fill_price: string | null;
  filled_at: string | null;
}

/** The user's latest `limit` signals, newest first, with their entry order. */
export function recentSignals(
  db: Queryable,
  userId: string,
  limit: number,
): Promise<RecentSignal[]> {
  return db.query<RecentSignal & Record<string, unknown>>(
    `SELECT s.id::text AS id, s.status, s.reason, a.alias AS account, s.symbol, s.ticker,
            s.action, s.quantity::text AS quantity,
            to_char(s.received_at AT TIME ZONE 'UTC', ${ISO}) AS received_at,
            to_char(s.finished_at AT TIME ZONE 'UTC', ${ISO}) AS finished_at,
            o.status AS order_status, o.average_fill_price::text AS fill_price,
            to_char(s.filled_at AT TIME ZONE 'UTC', ${ISO}) AS filled_at
       FROM signals s
       LEFT JOIN broker_accounts a ON a.id = s.account_id
       LEFT JOIN LATERAL (
         -- The entry order's client order id is the signal's id (unique index).
         SELECT status, average_fill_price FROM orders WHERE client_order_id = s.id::text
       ) o ON true
      WHERE s.user_id = $1
      ORDER BY s.received_at DESC, s.id DESC
      LIMIT $2`,
    [userId, limit],
  );
}

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
