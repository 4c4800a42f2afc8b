/**
 * The leg rule end to end: TradingView alerts through the webhook of the in-process runtime on
 * PostgreSQL, an Alpaca account created through the API, the real SDK against the fake Alpaca
 * (which holds shares for open orders, as Alpaca does). A bracket entry leaves two exit legs
 * holding the shares; the close that follows must cancel them first, or Alpaca answers 403.
 */
import assert from "node:assert/strict";
import { count, eventually, postAlert, startAlpacaRuntime } from "./_pipeline.ts";

const KEYS = { key_id: "PKE2ELEGS00000000001", secret_key: "e2e-legs-secret-0123456789abcdefghij" };

Deno.test("a close through the webhook cancels the bracket's exit legs at Alpaca, then sells the position", async () => {
  await using stack = await startAlpacaRuntime(KEYS, { AAPL: "190" });
  const { alpaca, db, server, trader, statusOf } = stack;
  await stack.addAccount("alpaca-legs");

  const entry = await postAlert(server.url, {
    key: trader.key,
    account: "alpaca-legs",
    ticker: "NASDAQ:AAPL",
    action: "buy",
    quantity: 10,
    price: 190,
    take_profit: 200,
    stop_loss: 185,
    id: "entry-1",
  });
  assert.equal(entry.status, 202, JSON.stringify(entry.body));
  const entryId: string = entry.body.signal_id;
  await eventually("the entry is filled", async () => (await statusOf(entryId)) === "filled");
  await eventually(
    "its two exit legs are recorded",
    async () =>
      (await count(
        db,
        "SELECT count(*)::int AS n FROM orders WHERE signal_id = $1 AND leg <> 'entry' AND status = 'pending'",
        [entryId],
      )) === 2,
  );
  const legs = alpaca.orders.get(entryId)!.legs!;
  assert.deepEqual(legs.map((l) => l.status), ["new", "new"]);

  const close = await postAlert(server.url, {
    key: trader.key,
    account: "alpaca-legs",
    ticker: "NASDAQ:AAPL",
    action: "close",
    price: 195,
    id: "exit-1",
  });
  assert.equal(close.status, 202, JSON.stringify(close.body));
  const closeId: string = close.body.signal_id;
  await eventually("the close is finished", async () => {
    const status = await statusOf(closeId);
    return status !== undefined && !["accepted", "executing", "placed"].includes(status);
  });
  const [signal] = await db.query<{ status: string; reason: string | null }>(
    "SELECT status, reason FROM signals WHERE id = $1",
    [closeId],
  );
  assert.deepEqual(signal, { status: "filled", reason: null });

  // At the broker: both legs canceled, one sell of the whole position, nothing refused.
  assert.deepEqual(legs.map((l) => l.status), ["canceled", "canceled"]);
  const sell = alpaca.orders.get(closeId);
  assert.deepEqual([sell?.side, sell?.qty, sell?.status], ["sell", "10", "filled"]);
  const deletes = alpaca.requests.filter((r) => r.method === "DELETE").map((r) => r.path);
  assert.deepEqual(deletes.sort(), legs.map((l) => `/v2/orders/${l.id}`).sort());

  // In the record: the legs canceled for this close, journaled before its fill; flat.
  const rows = await db.query<{ leg: string; status: string; reason: string }>(
    "SELECT leg, status, reason FROM orders WHERE signal_id = $1 AND leg <> 'entry' ORDER BY leg",
    [entryId],
  );
  assert.deepEqual(rows.map((r) => [r.leg, r.status]), [
    ["stop_loss", "canceled"],
    ["take_profit", "canceled"],
  ]);
  for (const r of rows) {
    assert.equal(r.reason, `Canceled: order "${closeId}" sells against the long position`);
  }
  const events = (await db.query<{ event: string }>(
    "SELECT event FROM journal WHERE signal_id = $1 ORDER BY id",
    [closeId],
  )).map((r) => r.event);
  assert.ok(events.includes("legs.canceled"), `journal: ${events}`);
  assert.ok(events.indexOf("legs.canceled") < events.indexOf("order.filled"), `${events}`);
  assert.equal(
    await count(
      db,
      "SELECT count(*)::int AS n FROM positions WHERE symbol = 'AAPL' AND quantity = 0",
    ),
    1,
  );
  assert.deepEqual(
    await db.query("SELECT status FROM trades WHERE entry_signal_id = $1", [entryId]).then((r) =>
      r.map((t) => t.status)
    ),
    ["closed"],
  );
});
