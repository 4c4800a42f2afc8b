/**
 * Reads for the dashboard's chart: which symbol/timeframe pairs a trader can chart (stored bars
 * or watched), and their fills of one symbol. Scoped by user.
 */
import type { Queryable } from "./client.ts";

/** A symbol and timeframe a trader has bars of, or watches. */
export interface ChartSeries {
  symbol: string;
  timeframe: string;
  /** Whether any bars are stored for it. */
  has_bars: boolean;
}

/** The pairs `userId` can chart, by symbol then timeframe (bars first, then watched ones). */
export function chartSeries(db: Queryable, userId: string): Promise<ChartSeries[]> {
  return db.query<ChartSeries & Record<string, unknown>>(
    `SELECT symbol, timeframe, bool_or(has_bars) AS has_bars FROM (
       SELECT DISTINCT symbol, timeframe, true AS has_bars FROM bars WHERE user_id = $1
       UNION ALL
       SELECT symbol, timeframe, false FROM watchlists WHERE user_id = $1
     ) s
     GROUP BY symbol, timeframe
     ORDER BY symbol, timeframe
     LIMIT 1000`,
    [userId],
  );
}

/** One fill as the chart marks it. */
export interface ChartFill {
  order_id: string;
  side: "buy" | "sell";
  quantity: string;
  price: string;
  filled_at: Date;
  account: string;
}

/** `userId`'s fills of `symbol` at or after `since`, oldest first (the newest 1,000). */
export function symbolFills(
  db: Queryable,
  userId: string,
  filter: { symbol: string; since: Date },
): Promise<ChartFill[]> {
  return db.query<ChartFill & Record<string, unknown>>(
    `SELECT * FROM (
       SELECT f.order_id, f.side, f.quantity::text AS quantity, f.price::text AS price, f.filled_at,
              a.alias AS account
       FROM fills f JOIN broker_accounts a ON a.id = f.account_id
       WHERE f.user_id = $1 AND f.symbol = $2 AND f.filled_at >= $3
       ORDER BY f.filled_at DESC
       LIMIT 1000
     ) newest
     ORDER BY filled_at`,
    [userId, filter.symbol, filter.since],
  );
}
