/**
 * Watchlists, scan settings, trendlines and their append-only history (trendline_events).
 */
import type { ScanTimeframe } from "../lib/schedule.ts";
import type { ScanSettings, Trendline } from "../lib/trendlines.ts";
import type { Queryable } from "./client.ts";

/** One watched symbol of a trader. */
export interface WatchEntry {
  userId: string;
  symbol: string;
  timeframe: ScanTimeframe;
  createdAt: Date;
}

/** Watches `symbol` on `timeframe` for `userId`; false when it was already watched. */
export async function addWatch(
  db: Queryable,
  entry: { userId: string; symbol: string; timeframe: ScanTimeframe },
): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO watchlists (user_id, symbol, timeframe) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING RETURNING 1`,
    [entry.userId, entry.symbol, entry.timeframe],
  );
  return rows.length === 1;
}

/** Stops watching; false when it was not watched. */
export async function removeWatch(
  db: Queryable,
  entry: { userId: string; symbol: string; timeframe: ScanTimeframe },
): Promise<boolean> {
  const rows = await db.query(
    `DELETE FROM watchlists WHERE user_id = $1 AND symbol = $2 AND timeframe = $3 RETURNING 1`,
    [entry.userId, entry.symbol, entry.timeframe],
  );
  return rows.length === 1;
}

const WATCH_COLUMNS = `user_id AS "userId", symbol, timeframe, created_at AS "createdAt"`;

/** The watchlist of `userId`, by symbol then timeframe. */
export function listWatches(db: Queryable, userId: string): Promise<WatchEntry[]> {
  return db.query<WatchEntry & Record<string, unknown>>(
    `SELECT ${WATCH_COLUMNS} FROM watchlists WHERE user_id = $1 ORDER BY symbol, timeframe`,
    [userId],
  );
}

/** Every trader's entries on `timeframe` (what one scan tick covers); `userId` narrows it. */
export function watchesOn(
  db: Queryable,
  timeframe: ScanTimeframe,
  filter: { userId?: string; symbol?: string } = {},
): Promise<WatchEntry[]> {
  return db.query<WatchEntry & Record<string, unknown>>(
    `SELECT ${WATCH_COLUMNS} FROM watchlists
     WHERE timeframe = $1 AND ($2::uuid IS NULL OR user_id = $2) AND ($3::text IS NULL OR symbol = $3)
     ORDER BY user_id, symbol`,
    [timeframe, filter.userId ?? null, filter.symbol ?? null],
  );
}

/** The scan settings `userId` saved (only the keys they set). */
export async function readScanSettings(
  db: Queryable,
  userId: string,
): Promise<Partial<ScanSettings>> {
  const [row] = await db.query<{ settings: Partial<ScanSettings> }>(
    "SELECT settings FROM scan_settings WHERE user_id = $1",
    [userId],
  );
  return row?.settings ?? {};
}

/** Saves `userId`'s scan settings (replacing what was there). */
export async function writeScanSettings(
  db: Queryable,
  userId: string,
  settings: Partial<ScanSettings>,
): Promise<void> {
  await db.query(
    `INSERT INTO scan_settings (user_id, settings) VALUES ($1, $2::text::jsonb)
     ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, updated_at = now()`,
    [userId, JSON.stringify(settings)],
  );
}

/** Where a stored line is in its life. */
export type TrendlineStatus = "active" | "broken" | "retired";

/** A stored line. */
export interface StoredTrendline {
  id: string;
  userId: string;
  symbol: string;
  timeframe: ScanTimeframe;
  kind: "support" | "resistance";
  t1: Date;
  p1: number;
  t2: Date;
  p2: number;
  slopePerHour: number;
  touches: number;
  score: number;
  status: TrendlineStatus;
  firstSeen: Date;
  lastEvaluated: Date;
  brokenAt: Date | null;
  lastBarTs: Date | null;
  retestedAt: Date | null;
}

const LINE_COLUMNS = `id, user_id AS "userId", symbol, timeframe, kind, t1, p1::float8 AS p1, t2,
  p2::float8 AS p2, slope_per_hour AS "slopePerHour", touches, score, status,
  first_seen AS "firstSeen", last_evaluated AS "lastEvaluated", broken_at AS "brokenAt",
  last_bar_ts AS "lastBarTs", retested_at AS "retestedAt"`;

/** Lines of `userId`, newest first, narrowed by symbol, timeframe and status. */
export function listTrendlines(
  db: Queryable,
  userId: string,
  filter: { symbol?: string; timeframe?: ScanTimeframe; status?: TrendlineStatus } = {},
): Promise<StoredTrendline[]> {
  return db.query<StoredTrendline & Record<string, unknown>>(
    `SELECT ${LINE_COLUMNS} FROM trendlines
     WHERE user_id = $1 AND ($2::text IS NULL OR symbol = $2)
       AND ($3::text IS NULL OR timeframe = $3) AND ($4::text IS NULL OR status = $4)
     ORDER BY first_seen DESC, score DESC LIMIT 1000`,
    [userId, filter.symbol ?? null, filter.timeframe ?? null, filter.status ?? null],
  );
}

/** Inserts a newly detected line and its `created` event; null when it is already stored. */
export async function insertTrendline(
  db: Queryable,
  key: { id: string; userId: string; symbol: string; timeframe: ScanTimeframe },
  line: Trendline,
  seen: { at: Date; lastBarTs: Date },
): Promise<StoredTrendline | null> {
  const [row] = await db.query<StoredTrendline & Record<string, unknown>>(
    `INSERT INTO trendlines (id, user_id, symbol, timeframe, kind, t1, p1, t2, p2, slope_per_hour,
       touches, score, first_seen, last_evaluated, last_bar_ts)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)
     ON CONFLICT (user_id, symbol, timeframe, kind, t1, t2) DO NOTHING
     RETURNING ${LINE_COLUMNS}`,
    [
      key.id,
      key.userId,
      key.symbol,
      key.timeframe,
      line.kind,
      line.t1,
      line.p1,
      line.t2,
      line.p2,
      line.slopePerHour,
      line.touches,
      line.score,
      seen.at,
      seen.lastBarTs,
    ],
  );
  if (!row) return null;
  await appendTrendlineEvent(db, row, "created", {
    at: seen.at,
    data: { touches: line.touches, score: line.score },
  });
  return row;
}

/** Updates the touches and score of a line found again. */
export async function refreshTrendline(
  db: Queryable,
  id: string,
  line: Pick<Trendline, "touches" | "score">,
  at: Date,
): Promise<void> {
  await db.query(
    `UPDATE trendlines SET touches = $2, score = $3, last_evaluated = $4 WHERE id = $1`,
    [id, line.touches, line.score, at],
  );
}

/** A history entry's kind. */
export type TrendlineEventKind = "created" | "touched" | "broken" | "retested" | "retired";

/** Appends one history entry of `line`. */
export async function appendTrendlineEvent(
  db: Queryable,
  line: { id: string; userId: string },
  kind: TrendlineEventKind,
  detail: { at: Date; barTs?: Date; price?: string; data?: Record<string, unknown> },
): Promise<void> {
  await db.query(
    `INSERT INTO trendline_events (trendline_id, user_id, kind, bar_ts, price, data, at)
     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)`,
    [
      line.id,
      line.userId,
      kind,
      detail.barTs ?? null,
      detail.price ?? null,
      JSON.stringify(detail.data ?? {}),
      detail.at,
    ],
  );
}

/** Moves a line to `status` after bar `barTs` (broken: sets broken_at; retested: retested_at). */
export async function markTrendline(
  db: Queryable,
  id: string,
  change: { status: TrendlineStatus; at: Date; lastBarTs?: Date; retested?: boolean },
): Promise<void> {
  await db.query(
    `UPDATE trendlines SET status = $2, last_evaluated = $3,
       last_bar_ts = COALESCE($4, last_bar_ts),
       broken_at = CASE WHEN $2 = 'broken' AND broken_at IS NULL THEN $3 ELSE broken_at END,
       retested_at = CASE WHEN $5 THEN $3 ELSE retested_at END
     WHERE id = $1`,
    [id, change.status, change.at, change.lastBarTs ?? null, change.retested ?? false],
  );
}

/** The history of a line, oldest first. */
export function trendlineEvents(
  db: Queryable,
  id: string,
): Promise<{ kind: TrendlineEventKind; barTs: Date | null; at: Date }[]> {
  return db.query(
    `SELECT kind, bar_ts AS "barTs", at FROM trendline_events WHERE trendline_id = $1 ORDER BY id`,
    [id],
  );
}
