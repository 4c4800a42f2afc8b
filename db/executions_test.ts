import assert from "node:assert/strict";
import { uuidv7 } from "../lib/ids.ts";
import { validateSignal } from "../lib/signal.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import {
  createOrder,
  lastPrice,
  type NewOrder,
  recordOrderUpdate,
  resizeNewOrder,
} from "./executions.ts";
import { acceptSignal } from "./signals.ts";

for (const engine of ENGINES) {
  Deno.test(`${engine}: the last known price is the newest an alert carried for the symbol, or a recorded one`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    assert.equal(await lastPrice(t.db, "AAPL"), null);
    const accept = async (at: string, price?: number) => {
      const r = validateSignal({
        ticker: "AAPL",
        action: "buy",
        quantity: 1,
        ...(price ? { price } : {}),
      });
      assert.ok(r.ok);
      const receivedAt = new Date(at);
      await acceptSignal(
        t.db,
        {
          id: uuidv7(receivedAt.getTime()),
          userId: trader.userId,
          accountId: trader.accountId,
          keyId: null,
          source: "tradingview",
          rawBody: "{}",
          receivedAt,
        },
        r.signal,
        { dedupKey: `k${at}${price}`, windowMs: 1, symbol: "AAPL" },
      );
    };
    await accept("2026-11-20T14:30:00Z", 190);
    await accept("2026-11-20T14:31:00Z", 191.5);
    await accept("2026-11-20T14:32:00Z"); // no price: does not count
    assert.equal(await lastPrice(t.db, "AAPL"), "191.5");
    await t.db.query(
      "INSERT INTO last_prices (symbol, price, at) VALUES ('AAPL', 192, '2026-11-20T14:33:00Z')",
    );
    assert.equal(await lastPrice(t.db, "AAPL"), "192", "a newer recorded price wins");
    assert.equal(await lastPrice(t.db, "MSFT"), null);
  });
}

for (const engine of ENGINES) {
  Deno.test(`${engine}: resizeNewOrder shrinks an unplaced order by what exit legs on its symbol and side filled since it was written, once`, async () => {
    await using t = await createTestDb(engine);
    const { userId, accountId } = await insertTrader(t.db);
    let minute = 0;
    const at = () => new Date(Date.UTC(2026, 10, 20, 14, minute++));
    const order = (fields: Partial<NewOrder>): NewOrder => ({
      id: uuidv7(),
      userId,
      accountId,
      signalId: null,
      parentId: null,
      leg: "take_profit",
      clientOrderId: crypto.randomUUID(),
      symbol: "AAPL",
      side: "sell",
      quantity: "10",
      orderType: "limit",
      timeInForce: "gtc",
      limitPrice: "110",
      stopPrice: null,
      ...fields,
    });
    /** Writes an order and fills `quantity` of it. */
    const filled = async (fields: Partial<NewOrder>, quantity: string) => {
      const { order: row } = await createOrder(t.db, order(fields), at());
      const when = at();
      await recordOrderUpdate(t.db, {
        userId,
        accountId,
        orderId: row.id,
        signalId: null,
        symbol: row.symbol,
        side: row.side,
        status: "partially_filled",
        brokerStatus: "partially_filled",
        brokerOrderId: `b-${row.id}`,
        filledQuantity: quantity,
        averageFillPrice: "110",
        reason: null,
        fills: [{
          id: uuidv7(),
          brokerFillId: `f-${row.id}`,
          quantity,
          price: "110",
          fee: "0",
          realizedPnl: "0",
          at: when,
        }],
        at: when,
      });
    };
    const resized = () =>
      t.db.query<{ data: Record<string, string> }>(
        "SELECT data FROM journal WHERE event = 'order.resized' ORDER BY id",
      );

    await filled({}, "5"); // before the order was written: its plan saw it
    const { order: close } = await createOrder(
      t.db,
      order({ leg: "entry", orderType: "market", limitPrice: null }),
      at(),
    );
    await filled({ symbol: "MSFT" }, "1"); // another symbol
    await filled({ side: "buy" }, "1"); // the other side
    await filled({ leg: "entry" }, "1"); // not an exit leg
    assert.deepEqual(await resizeNewOrder(t.db, close, { reason: "r", at: at() }), {
      quantity: "10",
      written: "10",
      legsFilled: "0",
      changed: false,
    });

    await filled({ leg: "stop_loss", orderType: "stop" }, "4");
    const first = await resizeNewOrder(t.db, close, { reason: "legs filled", at: at() });
    assert.deepEqual(
      [Number(first?.quantity), Number(first?.legsFilled), first?.changed],
      [6, 4, true],
    );
    const again = await resizeNewOrder(t.db, close, { reason: "legs filled", at: at() });
    assert.deepEqual([Number(again?.quantity), again?.changed], [6, false], "idempotent");
    const [row] = await t.db.query<{ quantity: string }>(
      "SELECT quantity::text AS quantity FROM orders WHERE id = $1",
      [close.id],
    );
    assert.equal(Number(row?.quantity), 6);
    assert.deepEqual((await resized()).map((r) => r.data), [
      { from: "10", to: "6", legs_filled: "4", reason: "legs filled" },
    ]);

    // The legs did it all: nothing left, the row is left for the caller to close.
    await filled({}, "7");
    const none = await resizeNewOrder(t.db, close, { reason: "legs filled", at: at() });
    assert.deepEqual([none?.quantity, Number(none?.legsFilled), none?.changed], ["0", 11, false]);
    assert.equal((await resized()).length, 1);

    await t.db.query("UPDATE orders SET status = 'pending' WHERE id = $1", [close.id]);
    assert.equal(await resizeNewOrder(t.db, close, { reason: "r", at: at() }), null);
  });
}
