import assert from "node:assert/strict";
import { uuidv7 } from "../lib/ids.ts";
import { validateSignal } from "../lib/signal.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import {
  claimForExecution,
  lastPrice,
  readBatchForExecution,
  recordSettledOrders,
  setSignalStatus,
  type SettledOrder,
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
  Deno.test(`${engine}: a settled batch whose signal was finished meanwhile writes nothing and fails`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const r = validateSignal({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
    assert.ok(r.ok);
    const at = new Date("2026-11-20T14:30:00Z");
    const signalIds: string[] = [];
    for (const key of ["a", "b"]) {
      const id = uuidv7(at.getTime());
      signalIds.push(id);
      await acceptSignal(
        t.db,
        {
          id,
          userId: trader.userId,
          accountId: trader.accountId,
          keyId: null,
          source: "tradingview",
          rawBody: "{}",
          receivedAt: at,
        },
        r.signal,
        { dedupKey: key, windowMs: 60_000, symbol: "AAPL" },
      );
    }
    const read = await readBatchForExecution(t.db, signalIds, trader.accountId);
    assert.deepEqual([...read.keys()].sort(), [...signalIds].sort());
    // Finished by someone else between the claim and the write.
    await setSignalStatus(t.db, signalIds[1]!, "rejected", "gone", at, {
      userId: trader.userId,
      accountId: trader.accountId,
    });
    const settled = (signalId: string): SettledOrder => {
      const orderId = uuidv7(at.getTime());
      return {
        order: {
          id: orderId,
          userId: trader.userId,
          accountId: trader.accountId,
          signalId,
          parentId: null,
          leg: "entry",
          clientOrderId: signalId,
          symbol: "AAPL",
          side: "buy",
          quantity: "1",
          orderType: "market",
          timeInForce: "day",
          limitPrice: null,
          stopPrice: null,
        },
        createdAt: at,
        update: {
          userId: trader.userId,
          accountId: trader.accountId,
          orderId,
          signalId,
          symbol: "AAPL",
          side: "buy",
          status: "filled",
          brokerStatus: "filled",
          brokerOrderId: `paper-${signalId}`,
          filledQuantity: "1",
          averageFillPrice: "190",
          reason: null,
          fills: [],
          signalStatus: { status: "filled", reason: null },
          at,
        },
      };
    };
    await assert.rejects(
      recordSettledOrders(t.db, signalIds.map(settled)),
      /some of their signals are finished already/,
    );
    const [orders] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM orders");
    assert.equal(orders!.n, 0);
    const statuses = await t.db.query<{ status: string }>(
      "SELECT status FROM signals ORDER BY id",
    );
    assert.deepEqual(statuses.map((s) => s.status).sort(), ["accepted", "rejected"]);
  });
}

for (const engine of ENGINES) {
  Deno.test(`${engine}: a batch read returns the accepted signals with their switches, and claims nothing`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const r = validateSignal({ ticker: "AAPL", action: "buy", quantity: 2, price: 190 });
    assert.ok(r.ok);
    const at = new Date("2026-11-20T14:30:00Z");
    const ids: string[] = [];
    for (const key of ["a", "b", "c"]) {
      const id = uuidv7(at.getTime());
      ids.push(id);
      await acceptSignal(
        t.db,
        {
          id,
          userId: trader.userId,
          accountId: trader.accountId,
          keyId: null,
          source: "tradingview",
          rawBody: "{}",
          receivedAt: at,
        },
        r.signal,
        { dedupKey: key, windowMs: 60_000, symbol: "AAPL" },
      );
    }
    await claimForExecution(t.db, ids[1]!, trader.accountId, at, { recovering: false });
    await t.db.query("UPDATE broker_accounts SET kill_switch = true WHERE id = $1", [
      trader.accountId,
    ]);
    const read = await readBatchForExecution(
      t.db,
      [ids[0]!, ids[1]!, ids[2]!, uuidv7()],
      trader.accountId,
    );
    assert.deepEqual([...read.keys()].sort(), [ids[0]!, ids[2]!].sort(), "accepted ones only");
    const claim = read.get(ids[0]!)!;
    assert.equal(claim.signal.quantity, "2");
    assert.equal(claim.signal.symbol, "AAPL");
    assert.equal(claim.order, null);
    assert.equal(claim.accountKillSwitch, true);
    assert.equal(claim.globalKillSwitch, false);
    const statuses = await t.db.query<{ status: string }>(
      "SELECT status FROM signals WHERE id = ANY($1::text::uuid[]) ORDER BY id",
      [`{${ids.join(",")}}`],
    );
    assert.deepEqual(statuses.map((s) => s.status).sort(), ["accepted", "accepted", "executing"]);
  });
}
