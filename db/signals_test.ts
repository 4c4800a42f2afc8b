import assert from "node:assert/strict";
import { type SignalInput, validateSignal } from "../lib/signal.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { DbUnavailableError, isDbUnavailable, type Queryable, type Row } from "./client.ts";
import { openPostgres } from "./postgres.ts";
import {
  type AcceptOutcome,
  type AcceptRequest,
  type AcceptResult,
  acceptSignal,
  getSignal,
  purgeExpiredDedup,
  rejectSignal,
  SignalAccepter,
  type SignalEnvelope,
  unfinishedSignals,
} from "./signals.ts";
import { claimForExecution } from "./executions.ts";

function signal(extra: Record<string, unknown> = {}): SignalInput {
  const r = validateSignal({
    ticker: "AAPL",
    action: "buy",
    quantity: 1,
    price: 190,
    strategy: { name: "s" },
    ...extra,
  });
  assert.ok(r.ok);
  return r.signal;
}

function envelope(userId: string, accountId: string, at: Date): SignalEnvelope {
  return {
    id: uuidv7(at.getTime()),
    userId,
    accountId,
    keyId: null,
    source: "tradingview",
    rawBody: "{}",
    receivedAt: at,
  };
}

for (const engine of ENGINES) {
  Deno.test(`${engine}: a signal is accepted once per dedup window, then again after it`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const t0 = new Date("2026-11-20T14:30:00Z");
    const options = { dedupKey: "id:alert-1", windowMs: 60_000, symbol: "AAPL" };
    const first = await acceptSignal(
      t.db,
      envelope(trader.userId, trader.accountId, t0),
      signal(),
      options,
    );
    assert.equal(first.duplicate, false);
    const again = await acceptSignal(
      t.db,
      envelope(trader.userId, trader.accountId, new Date(t0.getTime() + 59_000)),
      signal(),
      options,
    );
    assert.deepEqual(again, { duplicate: true, signalId: first.signalId });
    const later = await acceptSignal(
      t.db,
      envelope(trader.userId, trader.accountId, new Date(t0.getTime() + 60_000)),
      signal(),
      options,
    );
    assert.equal(later.duplicate, false);
    assert.notEqual(later.signalId, first.signalId);

    const row = await getSignal(t.db, first.signalId);
    assert.equal(row?.status, "accepted");
    assert.equal(row?.quantity, "1");
    assert.equal(row?.price, "190");
    const journal = await t.db.query<{ event: string }>(
      "SELECT event FROM journal WHERE signal_id = $1",
      [first.signalId],
    );
    assert.deepEqual(journal.map((j) => j.event), ["signal.accepted"]);
    const [{ n }] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM signals") as [
      { n: number },
    ];
    assert.equal(n, 2);
  });

  Deno.test(`${engine}: the same dedup key of two users does not collide`, async () => {
    await using t = await createTestDb(engine);
    const a = await insertTrader(t.db);
    const b = await insertTrader(t.db);
    const at = new Date("2026-11-20T14:30:00Z");
    const options = { dedupKey: "id:same", windowMs: 60_000, symbol: "AAPL" };
    assert.equal(
      (await acceptSignal(t.db, envelope(a.userId, a.accountId, at), signal(), options)).duplicate,
      false,
    );
    assert.equal(
      (await acceptSignal(t.db, envelope(b.userId, b.accountId, at), signal(), options)).duplicate,
      false,
    );
  });

  Deno.test(`${engine}: a rejected signal is journaled with its reason and is never claimable`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const e = envelope(trader.userId, trader.accountId, new Date());
    await rejectSignal(t.db, e, null, "Cannot accept the alert: validation failed", [{
      field: "ticker",
      message: "ticker is required",
    }]);
    const row = await getSignal(t.db, e.id);
    assert.equal(row?.status, "rejected");
    const [j] = await t.db.query<{ event: string; data: { reason: string; details: unknown[] } }>(
      "SELECT event, data FROM journal WHERE signal_id = $1",
      [e.id],
    );
    assert.equal(j?.event, "signal.rejected");
    assert.equal(j?.data.details.length, 1);
    assert.equal(
      await claimForExecution(t.db, e.id, trader.accountId, new Date(), { recovering: true }),
      null,
    );
  });

  Deno.test(`${engine}: a signal is claimed once; recovery may re-claim an executing one`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const at = new Date("2026-11-20T14:30:00Z");
    const { signalId } = await acceptSignal(
      t.db,
      envelope(trader.userId, trader.accountId, at),
      signal(),
      {
        dedupKey: "k",
        windowMs: 60_000,
        symbol: "AAPL",
      },
    );
    assert.deepEqual(
      (await unfinishedSignals(t.db, { olderThan: at, limit: 10 })).map((s) => s.id),
      [signalId],
    );
    const claim = (recovering: boolean) =>
      claimForExecution(t.db, signalId, trader.accountId, at, { recovering });
    const claimed = await claim(false);
    assert.equal(claimed?.signal.status, "executing");
    assert.equal(claimed?.order, null, "no order has been written for it yet");
    assert.equal(await claim(false), null, "a second claim fails");
    assert.equal((await claim(true))?.signal.id, signalId);
  });

  Deno.test(`${engine}: the journal is append-only`, async () => {
    await using t = await createTestDb(engine);
    await t.db.query("INSERT INTO journal (event) VALUES ('x')");
    await assert.rejects(t.db.query("UPDATE journal SET event = 'y'"), /append-only/);
    await assert.rejects(t.db.query("DELETE FROM journal"), /append-only/);
  });
}

Deno.test("postgres: 100 identical signals at once are accepted exactly once", async () => {
  await using t = await createTestDb("postgres");
  const trader = await insertTrader(t.db);
  const at = new Date();
  const results = await Promise.all(
    Array.from(
      { length: 100 },
      () =>
        acceptSignal(t.db, envelope(trader.userId, trader.accountId, at), signal(), {
          dedupKey: "sha256:same",
          windowMs: 60_000,
          symbol: "AAPL",
        }),
    ),
  );
  const accepted = results.filter((r) => !r.duplicate);
  assert.equal(accepted.length, 1);
  assert.ok(
    results.every((r) => r.signalId === accepted[0]!.signalId),
    "every duplicate names the accepted signal",
  );
  const [{ n }] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM signals") as [
    { n: number },
  ];
  assert.equal(n, 1);
});

for (const engine of ENGINES) {
  Deno.test(`${engine}: purging removes only closed dedup windows, and a duplicate inside an open one is still caught`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const t0 = new Date("2026-11-20T14:30:00Z");
    const accept = (key: string, at: Date) =>
      acceptSignal(t.db, envelope(trader.userId, trader.accountId, at), signal(), {
        dedupKey: key,
        windowMs: 60_000,
        symbol: "AAPL",
      });
    await accept("old", t0);
    const recent = await accept("recent", new Date(t0.getTime() + 30_000));
    assert.equal(await purgeExpiredDedup(t.db, new Date(t0.getTime() + 60_000)), 1);
    const keys = await t.db.query<{ dedup_key: string }>("SELECT dedup_key FROM signal_dedup");
    assert.deepEqual(keys.map((k) => k.dedup_key), ["recent"]);
    assert.deepEqual(await accept("recent", new Date(t0.getTime() + 61_000)), {
      duplicate: true,
      signalId: recent.signalId,
    });
    assert.equal((await accept("old", new Date(t0.getTime() + 61_000))).duplicate, false);
  });
}

/** `db` with its statements counted, failing every statement with `fail()` while it says so. */
function watched(db: Queryable, fail: () => Error | null = () => null) {
  const statements: string[] = [];
  const q: Queryable = {
    query<T extends Row>(text: string, params?: readonly unknown[]): Promise<T[]> {
      statements.push(text);
      const error = fail();
      return error ? Promise.reject(error) : db.query<T>(text, params);
    },
  };
  return { db: q, statements };
}

/** The accepter's answer, which must not be `stale` (no request here has a check). */
function settled(outcome: AcceptOutcome): AcceptResult {
  assert.ok(!("stale" in outcome), "not stale");
  return outcome;
}

function request(
  trader: { userId: string; accountId: string },
  at: Date,
  dedupKey: string,
  extra: Record<string, unknown> = {},
): AcceptRequest {
  return {
    envelope: envelope(trader.userId, trader.accountId, at),
    signal: signal(extra),
    dedupKey,
    windowMs: 60_000,
    symbol: "AAPL",
  };
}

async function countRows(db: Queryable, table: string): Promise<number> {
  const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return row!.n;
}

for (const engine of ENGINES) {
  Deno.test(`${engine}: the accepter commits concurrent signals in one statement, each as acceptSignal would`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const w = watched(t.db);
    const accepter = new SignalAccepter(w.db);
    const t0 = new Date("2026-11-20T14:30:00Z");
    const requests = Array.from(
      { length: 20 },
      (_, i) =>
        request(trader, new Date(t0.getTime() + i), `id:a-${i}`, {
          quantity: i + 1,
          comment: `n${i}`,
          strategy: { i },
          time: "2026-11-20T14:29:00Z",
        }),
    );
    const results = await Promise.all(requests.map((r) => accepter.accept(r)));
    assert.equal(w.statements.length, 1, "one statement for the whole burst");
    assert.deepEqual(results, requests.map((r) => ({ duplicate: false, signalId: r.envelope.id })));
    // The rows are what the single-signal statement writes.
    const reference = await acceptSignal(
      t.db,
      envelope(trader.userId, trader.accountId, t0),
      signal({ quantity: 1, comment: "n0", strategy: { i: 0 }, time: "2026-11-20T14:29:00Z" }),
      { dedupKey: "id:reference", windowMs: 60_000, symbol: "AAPL" },
    );
    const columns =
      `user_id, account_id, key_id, source, raw_body, account_alias, ticker, symbol, action,
      side, quantity, order_type, time_in_force, price, limit_price, stop_price, take_profit, stop_loss,
      strategy, comment, signal_time, status, reason, received_at, accepted_at`;
    const [batched] = await t.db.query(`SELECT ${columns} FROM signals WHERE id = $1`, [
      results[0]!.signalId,
    ]);
    const [single] = await t.db.query(`SELECT ${columns} FROM signals WHERE id = $1`, [
      reference.signalId,
    ]);
    assert.deepEqual(batched, single);
    // One journal entry each, in arrival order.
    const journal = await t.db.query<{ signal_id: string; event: string; data: unknown }>(
      "SELECT signal_id, event, data FROM journal WHERE signal_id <> $1 ORDER BY id",
      [reference.signalId],
    );
    assert.deepEqual(
      [...journal],
      requests.map((r) => ({
        signal_id: r.envelope.id,
        event: "signal.accepted",
        data: { dedup_key: r.dedupKey, source: "tradingview" },
      })),
    );
  });

  Deno.test(`${engine}: identical alerts in one batch are one signal; the others answer duplicate with its id`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const other = await insertTrader(t.db);
    const t0 = new Date("2026-11-20T14:30:00Z");
    const earlier = await acceptSignal(
      t.db,
      envelope(trader.userId, trader.accountId, t0),
      signal(),
      { dedupKey: "id:earlier", windowMs: 60_000, symbol: "AAPL" },
    );
    const w = watched(t.db);
    const accepter = new SignalAccepter(w.db);
    const at = new Date(t0.getTime() + 1_000);
    const burst = [
      request(trader, at, "id:same"),
      request(trader, at, "id:same"),
      request(other, at, "id:same"), // another user's key: not a duplicate
      request(trader, at, "id:earlier"),
      request(trader, at, "id:same"),
      request(trader, at, "id:earlier"),
    ];
    const results = await Promise.all(burst.map((r) => accepter.accept(r)));
    assert.equal(w.statements.length, 1);
    const same = burst[0]!.envelope.id;
    assert.deepEqual(results, [
      { duplicate: false, signalId: same },
      { duplicate: true, signalId: same },
      { duplicate: false, signalId: burst[2]!.envelope.id },
      { duplicate: true, signalId: earlier.signalId },
      { duplicate: true, signalId: same },
      { duplicate: true, signalId: earlier.signalId },
    ]);
    assert.equal(await countRows(t.db, "signals"), 3);
    assert.equal(await countRows(t.db, "journal"), 3);
  });

  Deno.test(`${engine}: an alert the database refuses fails alone; the rest of its batch is accepted`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const w = watched(t.db);
    const accepter = new SignalAccepter(w.db);
    const at = new Date("2026-11-20T14:30:00Z");
    // PostgreSQL text cannot hold NUL: the batch statement fails as a whole, for this one.
    const burst = [
      request(trader, at, "id:good-1"),
      request(trader, at, "id:bad", { comment: "nul \u0000 inside" }),
      request(trader, at, "id:good-2"),
      request(trader, at, "id:good-1"),
    ];
    const results = await Promise.allSettled(burst.map((r) => accepter.accept(r)));
    assert.deepEqual(results[0], {
      status: "fulfilled",
      value: { duplicate: false, signalId: burst[0]!.envelope.id },
    });
    assert.equal(results[1]!.status, "rejected");
    assert.equal(isDbUnavailable((results[1] as PromiseRejectedResult).reason), false);
    assert.deepEqual(results[2], {
      status: "fulfilled",
      value: { duplicate: false, signalId: burst[2]!.envelope.id },
    });
    assert.deepEqual(results[3], {
      status: "fulfilled",
      value: { duplicate: true, signalId: burst[0]!.envelope.id },
    });
    // The batch, then each request on its own.
    assert.equal(w.statements.length, 1 + burst.length);
    assert.equal(await countRows(t.db, "signals"), 2);
    assert.equal(await countRows(t.db, "journal"), 2);
  });

  Deno.test(`${engine}: with the database unreachable every request of the batch fails as unavailable, none is accepted`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    let down = true;
    const w = watched(
      t.db,
      () => down ? new DbUnavailableError("Cannot reach the database: connection refused") : null,
    );
    const accepter = new SignalAccepter(w.db);
    const at = new Date("2026-11-20T14:30:00Z");
    const burst = [1, 2, 3].map((i) => request(trader, at, `id:${i}`));
    const results = await Promise.allSettled(burst.map((r) => accepter.accept(r)));
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.ok(isDbUnavailable((r as PromiseRejectedResult).reason));
    }
    assert.equal(
      w.statements.length,
      1,
      "no request is retried on its own against a dead database",
    );
    assert.equal(await countRows(t.db, "signals"), 0);
    down = false;
    const again = (await Promise.all(burst.map((r) => accepter.accept(r)))).map(settled);
    assert.ok(again.every((r) => !r.duplicate));
    assert.equal(await countRows(t.db, "signals"), 3);
  });
}

Deno.test("postgres: the accepter fails a whole batch as unavailable when the server is cut off, and accepts again after", async () => {
  const { startTcpProxy } = await import("../tests/_tcp_proxy.ts");
  await using t = await createTestDb("postgres");
  const trader = await insertTrader(t.db);
  const target = new URL(t.url!);
  await using proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port) });
  const via = new URL(t.url!);
  via.port = String(proxy.port);
  const db = openPostgres(via.toString(), { poolSize: 2, queryTimeoutMs: 800 });
  try {
    const accepter = new SignalAccepter(db);
    const at = new Date();
    assert.equal(settled(await accepter.accept(request(trader, at, "id:before"))).duplicate, false);
    proxy.cut();
    const burst = [1, 2, 3, 4].map((i) => request(trader, at, `id:down-${i}`));
    const results = await Promise.allSettled(burst.map((r) => accepter.accept(r)));
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.ok(isDbUnavailable((r as PromiseRejectedResult).reason), String(r));
    }
    assert.equal(await countRows(t.db, "signals"), 1, "nothing acknowledged while down");
    proxy.restore();
    let accepted: AcceptResult | undefined;
    for (let i = 0; i < 50 && !accepted; i++) {
      accepted = await accepter.accept(request(trader, new Date(), "id:down-1")).then(
        settled,
        () => undefined,
      );
    }
    assert.equal(accepted?.duplicate, false);
  } finally {
    await db.close();
  }
});

Deno.test("postgres: 100 identical signals at once through the accepter are accepted exactly once", async () => {
  await using t = await createTestDb("postgres");
  const trader = await insertTrader(t.db);
  const accepters = [new SignalAccepter(t.db), new SignalAccepter(t.db)]; // two instances
  const at = new Date();
  const results = (await Promise.all(
    Array.from(
      { length: 100 },
      (_, i) => accepters[i % 2]!.accept(request(trader, at, "sha256:same")),
    ),
  )).map(settled);
  const accepted = results.filter((r) => !r.duplicate);
  assert.equal(accepted.length, 1);
  assert.ok(results.every((r) => r.signalId === accepted[0]!.signalId));
  assert.equal(await countRows(t.db, "signals"), 1);
});

for (const engine of ENGINES) {
  Deno.test(`${engine}: a checked accept writes nothing and answers stale when its key was revoked or its account changed`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const accepter = new SignalAccepter(t.db);
    const at = new Date();
    const check = { alias: "paper", broker: "paper", symbolMap: {}, microFutures: false };
    const checked = (key: string, extra: Partial<AcceptRequest> = {}): AcceptRequest => {
      const r = request(trader, at, key);
      return { ...r, envelope: { ...r.envelope, keyId: trader.keyId }, check, ...extra };
    };
    assert.equal(settled(await accepter.accept(checked("id:ok"))).duplicate, false);
    // The account's settings changed since the caller read them: its symbol map, its alias.
    await t.db.query(`UPDATE broker_accounts SET symbol_map = '{"AAPL":"AAPL2"}' WHERE id = $1`, [
      trader.accountId,
    ]);
    const burst = await Promise.all([
      accepter.accept(checked("id:stale")),
      accepter.accept(checked("id:stale")), // follows the first
      accepter.accept(checked("id:fresh", { check: { ...check, symbolMap: { AAPL: "AAPL2" } } })),
      accepter.accept(checked("id:alias", { check: { ...check, alias: "other" } })),
      accepter.accept({ ...request(trader, at, "id:unchecked") }),
    ]);
    assert.deepEqual(burst.map((r) => "stale" in r ? "stale" : r.duplicate), [
      "stale",
      "stale",
      false,
      "stale",
      false,
    ]);
    await t.db.query("UPDATE webhook_keys SET revoked_at = now() WHERE id = $1", [trader.keyId]);
    const revoked = await accepter.accept(
      checked("id:revoked", { check: { ...check, symbolMap: { AAPL: "AAPL2" } } }),
    );
    assert.deepEqual(revoked, { stale: true });
    const keys = await t.db.query<{ dedup_key: string }>(
      "SELECT dedup_key FROM signals ORDER BY dedup_key",
    );
    assert.deepEqual(keys.map((k) => k.dedup_key), ["id:fresh", "id:ok", "id:unchecked"]);
    assert.equal(await countRows(t.db, "signal_dedup"), 3);
    assert.equal(await countRows(t.db, "journal"), 3);
  });
}

for (const engine of ENGINES) {
  Deno.test(`${engine}: the accepter does not send a request whose caller stopped waiting`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const w = watched(t.db);
    const accepter = new SignalAccepter(w.db);
    const at = new Date();
    const past = { ...request(trader, at, "id:late"), deadline: performance.now() - 1 };
    const current = { ...request(trader, at, "id:current"), deadline: performance.now() + 60_000 };
    const [late, ok] = await Promise.allSettled([accepter.accept(past), accepter.accept(current)]);
    assert.equal(late.status, "rejected");
    assert.ok(isDbUnavailable((late as PromiseRejectedResult).reason));
    assert.deepEqual(ok, {
      status: "fulfilled",
      value: { duplicate: false, signalId: current.envelope.id },
    });
    assert.equal(w.statements.length, 1);
    assert.equal(await countRows(t.db, "signals"), 1);
  });
}
