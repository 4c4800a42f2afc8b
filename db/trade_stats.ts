/**
 * The summary line of the trades list: how many trades, how many of the closed ones won, and the
 * realized P&L, over every trade the filters match (not only the page shown).
 */
import type { Queryable } from "./client.ts";
import type { TradeFilter } from "./reads.ts";

/** Counts and totals over a filtered set of trades. */
export interface TradeSummary {
  trades: number;
  closed: number;
  /** Closed trades with a positive realized P&L. */
  wins: number;
  /** Decimal string. */
  realized_pnl: string;
  /** Decimal string. */
  fees: string;
}

/** The summary of the trades of `userId` matching `filter` (its cursor and limit ignored). */
export async function tradeSummary(
  db: Queryable,
  userId: string,
  filter: Omit<TradeFilter, "cursor" | "limit"> = {},
): Promise<TradeSummary> {
  const params: unknown[] = [userId];
  const where = ["t.user_id = $1"];
  if (filter.status !== undefined) {
    params.push(filter.status);
    where.push(`t.status = $${params.length}`);
  }
  if (filter.symbol !== undefined) {
    params.push(filter.symbol);
    where.push(`t.symbol = $${params.length}`);
  }
  if (filter.account !== undefined) {
    params.push(filter.account);
    where.push(`a.alias = $${params.length}`);
  }
  const [row] = await db.query(
    `SELECT count(*)::int AS trades,
            count(*) FILTER (WHERE t.status = 'closed')::int AS closed,
            count(*) FILTER (WHERE t.status = 'closed' AND t.realized_pnl > 0)::int AS wins,
            COALESCE(sum(t.realized_pnl), 0)::text AS realized_pnl,
            COALESCE(sum(t.fees), 0)::text AS fees
     FROM trades t JOIN broker_accounts a ON a.id = t.account_id
     WHERE ${where.join(" AND ")}`,
    params,
  );
  return {
    trades: Number(row?.trades ?? 0),
    closed: Number(row?.closed ?? 0),
    wins: Number(row?.wins ?? 0),
    realized_pnl: String(row?.realized_pnl ?? "0"),
    fees: String(row?.fees ?? "0"),
  };
}
