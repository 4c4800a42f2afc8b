/**
 * Signals: accepted durably with their dedup in one statement, rejected with a reason, and
 * moved through their states by conditional updates (so two workers never both claim one).
 */
import type { SignalInput } from "../lib/signal.ts";
import { Batcher, type BatcherOptions, type BatchOutcome } from "./batcher.ts";
import { DbUnavailableError, isDbUnavailable, type Queryable } from "./client.ts";

/** Where a signal came from. */
export type SignalSource = "tradingview" | "signed";

/** The life of a signal. The last four are terminal. */
export type SignalStatus =
  | "accepted"
  | "executing"
  | "placed"
  | "filled"
  | "rejected"
  | "failed"
  | "canceled";

/** Who sent a signal and when, shared by accepts and rejects. */
export interface SignalEnvelope {
  id: string;
  userId: string;
  keyId: string | null;
  accountId: string | null;
  source: SignalSource;
  rawBody: string;
  receivedAt: Date;
}

/** The answer to an accept: a new signal, or the one it duplicates. */
export type AcceptResult = { duplicate: false; signalId: string } | {
  duplicate: true;
  signalId: string;
};

const SIGNAL_COLUMNS =
  `id, user_id, account_id, key_id, source, dedup_key, raw_body, account_alias, ticker, symbol,
  action, side, quantity, order_type, time_in_force, price, limit_price, stop_price, take_profit, stop_loss,
  sender_id, strategy, comment, signal_time, status, reason, received_at, accepted_at`;

function signalValues(e: SignalEnvelope, s: SignalInput, symbol: string | null) {
  return [
    e.accountId,
    e.keyId,
    e.source,
    e.rawBody,
    s.account,
    s.ticker,
    symbol,
    s.action,
    s.side,
    s.quantity,
    s.orderType,
    s.timeInForce,
    s.price,
    s.limitPrice,
    s.stopPrice,
    s.takeProfit,
    s.stopLoss,
    s.senderId,
    s.strategy ? JSON.stringify(s.strategy) : null,
    s.comment,
    s.time,
  ];
}

/**
 * Inserts a new signal unless one with the same dedup key arrived within `windowMs`: the dedup
 * row, the signal and its journal entry are written by ONE statement, so a signal is on disk
 * exactly when the caller may acknowledge it. Concurrent identical requests serialize on the
 * dedup row's unique key; exactly one of them is accepted.
 */
export async function acceptSignal(
  db: Queryable,
  envelope: SignalEnvelope,
  signal: SignalInput,
  options: { dedupKey: string; windowMs: number; symbol: string },
): Promise<AcceptResult> {
  const e = envelope;
  const [row] = await db.query<{ accepted: string | null; existing: string | null }>(
    `WITH dedup AS (
       INSERT INTO signal_dedup (user_id, dedup_key, signal_id, expires_at)
       VALUES ($1, $2, $3, $4::timestamptz + make_interval(secs => $5::double precision / 1000))
       ON CONFLICT (user_id, dedup_key) DO UPDATE
         SET signal_id = EXCLUDED.signal_id, expires_at = EXCLUDED.expires_at
         WHERE signal_dedup.expires_at <= $4::timestamptz
       RETURNING signal_id
     ), signal AS (
       INSERT INTO signals (${SIGNAL_COLUMNS})
       SELECT signal_id, $1, $6, $7, $8, $2, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
              $23, $24::text::jsonb, $25, $26, 'accepted', NULL, $4, $4
       FROM dedup
       RETURNING id
     ), journaled AS (
       INSERT INTO journal (user_id, account_id, signal_id, event, data, at)
       SELECT $1, $6, id, 'signal.accepted', jsonb_build_object('dedup_key', $2::text, 'source', $8::text), $4 FROM signal
     )
     SELECT (SELECT id FROM signal) AS accepted,
            (SELECT signal_id FROM signal_dedup WHERE user_id = $1 AND dedup_key = $2) AS existing`,
    [
      e.userId,
      options.dedupKey,
      e.id,
      e.receivedAt,
      options.windowMs,
      ...signalValues(e, signal, options.symbol),
    ],
  );
  if (row?.accepted) return { duplicate: false, signalId: row.accepted };
  if (row?.existing) return { duplicate: true, signalId: row.existing };
  // The winner of a race committed after this statement's snapshot: read it in a new one.
  const [again] = await db.query<{ signal_id: string }>(
    "SELECT signal_id FROM signal_dedup WHERE user_id = $1 AND dedup_key = $2",
    [e.userId, options.dedupKey],
  );
  if (!again) throw new Error(`Cannot accept signal "${e.id}": its dedup row vanished`);
  return { duplicate: true, signalId: again.signal_id };
}

/**
 * What a request was built on, for the accepting statement to check again: that the envelope's
 * webhook key is still usable and its account still this one, with these settings (the symbol
 * was mapped with them). A caller that read them from a cache passes this.
 */
export interface AcceptCheck {
  alias: string;
  broker: string;
  symbolMap: Record<string, string>;
  microFutures: boolean;
}

/** One request to accept a signal: what {@linkcode acceptSignal} takes. */
export interface AcceptRequest {
  envelope: SignalEnvelope;
  signal: SignalInput;
  dedupKey: string;
  windowMs: number;
  symbol: string;
  /** Check the key and account first; nothing is written when they changed. */
  check?: AcceptCheck;
  /**
   * When the caller stops waiting (`performance.now()` ms): a request still waiting for its batch
   * then is not sent (it would commit a signal nobody acknowledged); it fails with
   * {@linkcode DbUnavailableError}.
   */
  deadline?: number;
}

/**
 * An accept's answer: a new signal, the one it duplicates, or — for a request with a
 * {@linkcode AcceptCheck} — `stale`: its key is no longer usable or its account changed, nothing
 * was written, and the caller must look them up again.
 */
export type AcceptOutcome = AcceptResult | { stale: true };

/**
 * Accepts signals with group commit: concurrent requests share ONE statement and ONE commit (a
 * {@linkcode Batcher}), each with exactly {@linkcode acceptSignal}'s answer.
 *
 * - Two requests of a batch with the same user and dedup key are one signal: the first is
 *   accepted (or found a duplicate) and the others answer duplicate with its id.
 * - The database unreachable: every request of the batch fails with that error (a 503), none is
 *   acknowledged.
 * - Any other failure of the batch (one request's data the database refuses): each request is
 *   tried again on its own, so only the one at fault fails.
 */
export class SignalAccepter {
  readonly #db: Queryable;
  readonly #batcher: Batcher<AcceptRequest, AcceptOutcome>;

  constructor(db: Queryable, options: BatcherOptions = {}) {
    this.#db = db;
    this.#batcher = new Batcher((requests) => this.#acceptBatch(requests), options);
  }

  /** Accepts one signal, with whatever other requests are waiting. */
  accept(request: AcceptRequest): Promise<AcceptOutcome> {
    return this.#batcher.add(request);
  }

  async #acceptBatch(all: readonly AcceptRequest[]): Promise<BatchOutcome<AcceptOutcome>[]> {
    const now = performance.now();
    const late = (r: AcceptRequest) => r.deadline !== undefined && r.deadline <= now;
    if (all.some(late)) {
      const waiting = all.filter((r) => !late(r));
      const outcomes = waiting.length > 0 ? await this.#acceptBatch(waiting) : [];
      return all.map((r) => late(r) ? { ok: false, error: gaveUp() } : outcomes.shift()!);
    }
    const requests = all;
    // The first request of each (user, dedup key) goes to the database; the rest follow it.
    const leaders = new Map<string, number>();
    const leaderOf = requests.map((r, i) => {
      const key = `${r.envelope.userId}\n${r.dedupKey}`;
      const leader = leaders.get(key);
      if (leader !== undefined) return leader;
      leaders.set(key, i);
      return i;
    });
    const unique = [...leaders.values()];
    let results: AcceptOutcome[];
    try {
      results = await acceptSignals(this.#db, unique.map((i) => requests[i]!));
    } catch (error) {
      if (isDbUnavailable(error)) throw error;
      return await this.#oneByOne(requests);
    }
    const byLeader = new Map(unique.map((i, n) => [i, results[n]!]));
    return requests.map((_, i) => {
      const leader = byLeader.get(leaderOf[i]!)!;
      if (leaderOf[i] === i || "stale" in leader) return { ok: true, value: leader };
      return { ok: true, value: { duplicate: true, signalId: leader.signalId } };
    });
  }

  /** After a failed batch: each request alone, in order, so only the one at fault fails. */
  async #oneByOne(requests: readonly AcceptRequest[]): Promise<BatchOutcome<AcceptOutcome>[]> {
    const outcomes: BatchOutcome<AcceptOutcome>[] = [];
    for (const r of requests) {
      try {
        const [value] = await acceptSignals(this.#db, [r]);
        outcomes.push({ ok: true, value: value! });
      } catch (error) {
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes;
  }
}

function gaveUp(): DbUnavailableError {
  return new DbUnavailableError(
    "Cannot reach the database: the signal was not sent before its caller stopped waiting",
  );
}

/**
 * {@linkcode acceptSignal} for many requests in ONE statement (one commit): each request's
 * dedup row, signal and journal entry, and its answer, in the requests' order. The requests must
 * have distinct (user, dedup key) pairs; the journal entries are written in the requests' order.
 * A request with a {@linkcode AcceptCheck} that fails writes nothing and answers `stale`.
 */
export async function acceptSignals(
  db: Queryable,
  requests: readonly AcceptRequest[],
): Promise<AcceptOutcome[]> {
  if (requests.length === 0) return [];
  const input = requests.map((r, n) => {
    const e = r.envelope;
    const s = r.signal;
    return {
      n,
      id: e.id,
      user_id: e.userId,
      dedup_key: r.dedupKey,
      window_ms: r.windowMs,
      received_at: e.receivedAt.toISOString(),
      account_id: e.accountId,
      key_id: e.keyId,
      source: e.source,
      raw_body: e.rawBody,
      account_alias: s.account,
      ticker: s.ticker,
      symbol: r.symbol,
      action: s.action,
      side: s.side,
      quantity: s.quantity,
      order_type: s.orderType,
      time_in_force: s.timeInForce,
      price: s.price,
      limit_price: s.limitPrice,
      stop_price: s.stopPrice,
      take_profit: s.takeProfit,
      stop_loss: s.stopLoss,
      sender_id: s.senderId,
      strategy: s.strategy,
      comment: s.comment,
      signal_time: s.time?.toISOString() ?? null,
      checked: r.check !== undefined,
      alias: r.check?.alias ?? null,
      broker: r.check?.broker ?? null,
      symbol_map: r.check?.symbolMap ?? null,
      micro_futures: r.check?.microFutures ?? null,
    };
  });
  // The dedup rows are locked in (user, key) order, so two instances' batches cannot deadlock.
  // A checked request's key must still be usable when it arrived, and its account still the
  // one (same id, alias and settings) the caller mapped the symbol with.
  const rows = await db.query<
    { n: number; valid: boolean; accepted: string | null; existing: string | null }
  >(
    `WITH input AS (
       SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS x(n int, id uuid, user_id uuid, dedup_key text,
         window_ms double precision, received_at timestamptz, account_id uuid, key_id uuid, source text,
         raw_body text, account_alias text, ticker text, symbol text, action text, side text, quantity numeric,
         order_type text, time_in_force text, price numeric, limit_price numeric, stop_price numeric,
         take_profit numeric, stop_loss numeric, sender_id text, strategy jsonb, comment text,
         signal_time timestamptz, checked boolean, alias text, broker text, symbol_map jsonb,
         micro_futures boolean)
     ), valid AS (
       SELECT i.* FROM input i
       WHERE NOT i.checked OR (
         EXISTS (SELECT 1 FROM webhook_keys k
                 WHERE k.id = i.key_id AND k.user_id = i.user_id AND k.revoked_at IS NULL
                   AND (k.expires_at IS NULL OR k.expires_at > i.received_at))
         AND EXISTS (SELECT 1 FROM broker_accounts a
                     WHERE a.id = i.account_id AND a.user_id = i.user_id AND a.alias = i.alias
                       AND a.broker = i.broker AND a.symbol_map = i.symbol_map
                       AND a.micro_futures = i.micro_futures))
     ), dedup AS (
       INSERT INTO signal_dedup AS d (user_id, dedup_key, signal_id, expires_at)
       SELECT user_id, dedup_key, id, received_at + make_interval(secs => window_ms / 1000)
       FROM valid ORDER BY user_id, dedup_key
       ON CONFLICT (user_id, dedup_key) DO UPDATE
         SET signal_id = EXCLUDED.signal_id, expires_at = EXCLUDED.expires_at
         WHERE d.expires_at <= (SELECT i.received_at FROM input i WHERE i.id = EXCLUDED.signal_id)
       RETURNING signal_id
     ), signal AS (
       INSERT INTO signals (${SIGNAL_COLUMNS})
       SELECT i.id, i.user_id, i.account_id, i.key_id, i.source, i.dedup_key, i.raw_body, i.account_alias,
              i.ticker, i.symbol, i.action, i.side, i.quantity, i.order_type, i.time_in_force, i.price,
              i.limit_price, i.stop_price, i.take_profit, i.stop_loss, i.sender_id, i.strategy, i.comment,
              i.signal_time, 'accepted', NULL, i.received_at, i.received_at
       FROM valid i JOIN dedup ON dedup.signal_id = i.id
       RETURNING id
     ), journaled AS (
       INSERT INTO journal (user_id, account_id, signal_id, event, data, at)
       SELECT i.user_id, i.account_id, i.id, 'signal.accepted',
              jsonb_build_object('dedup_key', i.dedup_key, 'source', i.source), i.received_at
       FROM input i JOIN signal s ON s.id = i.id ORDER BY i.n
     )
     SELECT i.n, EXISTS (SELECT 1 FROM valid v WHERE v.n = i.n) AS valid, s.id AS accepted,
            (SELECT d.signal_id FROM signal_dedup d WHERE d.user_id = i.user_id AND d.dedup_key = i.dedup_key)
              AS existing
     FROM input i LEFT JOIN signal s ON s.id = i.id`,
    [JSON.stringify(input)],
  );
  if (rows.length !== requests.length) {
    throw new Error(
      `Cannot accept ${requests.length} signals: the statement answered ${rows.length}`,
    );
  }
  const results: AcceptOutcome[] = new Array(requests.length);
  for (const row of rows) {
    const r = requests[row.n]!;
    if (!row.valid) results[row.n] = { stale: true };
    else if (row.accepted) results[row.n] = { duplicate: false, signalId: row.accepted };
    else if (row.existing) results[row.n] = { duplicate: true, signalId: row.existing };
    else {
      // The winner of a race committed after this statement's snapshot: read it in a new one.
      const [again] = await db.query<{ signal_id: string }>(
        "SELECT signal_id FROM signal_dedup WHERE user_id = $1 AND dedup_key = $2",
        [r.envelope.userId, r.dedupKey],
      );
      if (!again) {
        throw new Error(`Cannot accept signal "${r.envelope.id}": its dedup row vanished`);
      }
      results[row.n] = { duplicate: true, signalId: again.signal_id };
    }
  }
  return results;
}

/**
 * Records a signal refused at the door (invalid payload, unknown account, unmappable symbol), so
 * the trader can see why; nothing is executed. `signal` is null when the payload did not validate.
 */
export async function rejectSignal(
  db: Queryable,
  envelope: SignalEnvelope,
  signal: SignalInput | null,
  reason: string,
  details: unknown,
): Promise<void> {
  const e = envelope;
  const s = signal;
  await db.query(
    `WITH signal AS (
       INSERT INTO signals (id, user_id, account_id, key_id, source, dedup_key, raw_body, account_alias, ticker, action,
                            side, quantity, order_type, sender_id, status, reason, received_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $17, $6, $7, $8, $9, $10, $11, $12, $13, 'rejected', $14, $15, $15)
       RETURNING id
     )
     INSERT INTO journal (user_id, account_id, signal_id, event, data, at)
     SELECT $2, $3, id, 'signal.rejected', jsonb_build_object('reason', $14::text, 'details', $16::text::jsonb), $15 FROM signal`,
    [
      e.id,
      e.userId,
      e.accountId,
      e.keyId,
      e.source,
      e.rawBody,
      s?.account ?? null,
      s?.ticker ?? null,
      s?.action ?? null,
      s?.side ?? null,
      s?.quantity ?? null,
      s?.orderType ?? null,
      s?.senderId ?? null,
      reason,
      e.receivedAt,
      JSON.stringify(details ?? null),
      `rejected:${e.id}`,
    ],
  );
}

/** Deletes dedup rows whose window closed before `now`; returns how many. */
export async function purgeExpiredDedup(db: Queryable, now: Date): Promise<number> {
  const rows = await db.query("DELETE FROM signal_dedup WHERE expires_at <= $1 RETURNING 1", [now]);
  return rows.length;
}

/** A signal as the executor reads it. */
export interface SignalRow {
  id: string;
  userId: string;
  accountId: string | null;
  ticker: string;
  symbol: string | null;
  action: string;
  side: "buy" | "sell" | null;
  quantity: string | null;
  orderType: "market" | "limit" | "stop" | "stop_limit";
  timeInForce: string;
  price: string | null;
  limitPrice: string | null;
  stopPrice: string | null;
  takeProfit: string | null;
  stopLoss: string | null;
  status: SignalStatus;
  receivedAt: Date;
  signalTime: Date | null;
  /**
   * Set on the entry of a split flip: the signal whose close it waits for (see
   * `createSplitClose` in db/executions.ts).
   */
  parentSignalId: string | null;
}

/** The columns of a {@linkcode SignalRow}, for queries that return one. */
export const SIGNAL_ROW_COLUMNS =
  `id, user_id AS "userId", account_id AS "accountId", ticker, symbol, action, side, quantity,
  order_type AS "orderType", time_in_force AS "timeInForce", price, limit_price AS "limitPrice",
  stop_price AS "stopPrice", take_profit AS "takeProfit", stop_loss AS "stopLoss", status,
  received_at AS "receivedAt", signal_time AS "signalTime", parent_signal_id AS "parentSignalId"`;

/** Reads one signal. */
export async function getSignal(db: Queryable, id: string): Promise<SignalRow | null> {
  const [row] = await db.query<SignalRow & Record<string, unknown>>(
    `SELECT ${SIGNAL_ROW_COLUMNS} FROM signals WHERE id = $1`,
    [id],
  );
  return row ?? null;
}

/** Ids of signals accepted but not finished, oldest first (for recovery and the sweeper). */
export async function unfinishedSignals(
  db: Queryable,
  options: { olderThan: Date; limit: number },
): Promise<Array<{ id: string; accountId: string | null; status: SignalStatus }>> {
  return await db.query(
    `SELECT id, account_id AS "accountId", status FROM signals
     WHERE status IN ('accepted', 'executing', 'placed') AND received_at <= $1
     ORDER BY received_at, id LIMIT $2`,
    [options.olderThan, options.limit],
  );
}
