import assert from "node:assert/strict";
import { type SignalInput, validateSignal } from "../lib/signal.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import {
  acceptSignal,
  getSignal,
  purgeExpiredDedup,
  rejectSignal,
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
