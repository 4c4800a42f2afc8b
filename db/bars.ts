/**
 * OHLCV bars: idempotent upserts (a bar sent twice, or corrected, leaves one row with the last
 * values) and reads in time order. Prices are exact decimal strings, as everywhere.
 */
import type { Queryable } from "./client.ts";

/** The timeframes bars and scans use. */
export const TIMEFRAMES = ["1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w"] as const;
/** A timeframe. */
export type Timeframe = typeof TIMEFRAMES[number];

/** Where a bar came from. */
export type BarSource = "webhook" | "alpaca" | "csv";

/** One bar. Prices and volume are decimal strings. */
export interface Bar {
  /** Open time. */
  ts: Date;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
}

/** Largest number of bars one upsert statement takes (larger batches are split). */
export const MAX_BARS_PER_STATEMENT = 5_000;

/**
 * Inserts or updates `bars` of `userId`'s `symbol` on `timeframe`; returns how many rows were
 * written. Bars with the same open time in one call: the last one wins.
 */
export async function upsertBars(
  db: Queryable,
  key: { userId: string; symbol: string; timeframe: Timeframe; source: BarSource },
  bars: readonly Bar[],
): Promise<number> {
  const byTime = new Map<number, Bar>();
  for (const bar of bars) byTime.set(bar.ts.getTime(), bar);
  const unique = [...byTime.values()];
  let written = 0;
  for (let i = 0; i < unique.length; i += MAX_BARS_PER_STATEMENT) {
    const chunk = unique.slice(i, i + MAX_BARS_PER_STATEMENT);
    const rows = await db.query(
      `INSERT INTO bars (user_id, symbol, timeframe, ts, open, high, low, close, volume, source)
       SELECT $1, $2, $3, t.ts, t.open, t.high, t.low, t.close, t.volume, $4
       FROM unnest($5::timestamptz[], $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[],
                   $10::numeric[]) AS t(ts, open, high, low, close, volume)
       ON CONFLICT (user_id, symbol, timeframe, ts) DO UPDATE SET
         open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
         volume = excluded.volume, source = excluded.source, updated_at = now()
       RETURNING 1`,
      [
        key.userId,
        key.symbol,
        key.timeframe,
        key.source,
        chunk.map((b) => b.ts.toISOString()),
        chunk.map((b) => b.open),
        chunk.map((b) => b.high),
        chunk.map((b) => b.low),
        chunk.map((b) => b.close),
        chunk.map((b) => b.volume),
      ],
    );
    written += rows.length;
  }
  return written;
}

/** Options of {@linkcode readBars}. */
export interface ReadBarsOptions {
  /** Only bars opening at or after this time. */
  since?: Date;
  /** Only bars opening before this time. */
  until?: Date;
  /** The newest `limit` bars (still returned oldest first). */
  limit?: number;
}

/** The bars of `userId`'s `symbol` on `timeframe`, oldest first. */
export async function readBars(
  db: Queryable,
  key: { userId: string; symbol: string; timeframe: Timeframe },
  options: ReadBarsOptions = {},
): Promise<Bar[]> {
  const rows = await db.query<Bar & Record<string, unknown>>(
    `SELECT ts, open::text AS open, high::text AS high, low::text AS low, close::text AS close,
            volume::text AS volume
     FROM (
       SELECT * FROM bars
       WHERE user_id = $1 AND symbol = $2 AND timeframe = $3
         AND ($4::timestamptz IS NULL OR ts >= $4) AND ($5::timestamptz IS NULL OR ts < $5)
       ORDER BY ts DESC
       LIMIT $6
     ) newest
     ORDER BY ts`,
    [
      key.userId,
      key.symbol,
      key.timeframe,
      options.since ?? null,
      options.until ?? null,
      options.limit ?? null,
    ],
  );
  return rows;
}

/**
 * Records `price` as the symbol's last known price at `at`, unless a newer one is known (a late
 * or replayed bar never moves the price back).
 */
export async function recordLastPrice(
  db: Queryable,
  symbol: string,
  price: string,
  at: Date,
): Promise<void> {
  await db.query(
    `INSERT INTO last_prices (symbol, price, at) VALUES ($1, $2, $3)
     ON CONFLICT (symbol) DO UPDATE SET price = excluded.price, at = excluded.at
     WHERE last_prices.at <= excluded.at`,
    [symbol, price, at],
  );
}
