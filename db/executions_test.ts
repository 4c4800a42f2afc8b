import assert from "node:assert/strict";
import { uuidv7 } from "../lib/ids.ts";
import { validateSignal } from "../lib/signal.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader, marketBuyOrder } from "../tests/_fixtures.ts";
import { DbUnavailableError, isDbUnavailable, type Queryable } from "./client.ts";
import {
  claimForExecution,
  createOrder,
  createSplitClose,
  endedSignals,
  ExecutionBatches,
  lastPrice,
  type NewOrder,
  readBatchForExecution,
  recordOrderUpdate,
  recordSettledOrders,
  resizeNewOrder,
  setSignalStatus,
  type SettledOrder,
  splitEntryOf,
  waitingEntries,
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
    const at = new Date("2026-11-20T14:30:00Z");
    const signalIds: string[] = [];
    for (const key of ["a", "b"]) signalIds.push(await acceptBuy(t.db, trader, key, at));
    const read = await readBatchForExecution(t.db, signalIds, trader.accountId);
    assert.deepEqual([...read.keys()].sort(), [...signalIds].sort());
    // Finished by someone else between the claim and the write.
    await setSignalStatus(t.db, signalIds[1]!, "rejected", "gone", at, {
      userId: trader.userId,
      accountId: trader.accountId,
    });
    const settled = (signalId: string) => settledBuy(trader, signalId, at);
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
    const at = new Date("2026-11-20T14:30:00Z");
    const ids: string[] = [];
    for (const key of ["a", "b", "c"]) ids.push(await acceptBuy(t.db, trader, key, at, 2));
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

/**
 * A paper buy of 1 AAPL at 190 for `signalId`, filled in memory as the executor writes it: the
 * `held`th share of the account's long (1: it opens the trade, then it resizes it).
 */
function settledBuy(
  trader: { userId: string; accountId: string },
  signalId: string,
  at: Date,
  held = 1,
): SettledOrder {
  const orderId = uuidv7(at.getTime());
  return {
    order: marketBuyOrder(trader, signalId, orderId),
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
      fills: [{
        id: uuidv7(at.getTime()),
        brokerFillId: `paper-${signalId}:1`,
        quantity: "1",
        price: "190",
        fee: "0",
        realizedPnl: "0",
        at,
      }],
      position: {
        quantity: String(held),
        averagePrice: "190",
        realizedPnl: "0",
        lastPrice: "190",
      },
      trade: held === 1
        ? {
          kind: "open",
          id: uuidv7(at.getTime()),
          direction: "long",
          quantity: "1",
          entryPrice: "190",
          stopLoss: null,
        }
        : {
          kind: "resize",
          quantity: String(held),
          entryPrice: "190",
          fees: "0",
          realizedPnl: "0",
        },
      signalStatus: { status: "filled", reason: null },
      at,
    },
  };
}

/** Accepts a buy of `quantity` AAPL for `trader` with dedup key `key`; returns its id. */
async function acceptBuy(
  db: Queryable,
  trader: { userId: string; accountId: string },
  key: string,
  at: Date,
  quantity = 1,
): Promise<string> {
  const r = validateSignal({ ticker: "AAPL", action: "buy", quantity, price: 190 });
  assert.ok(r.ok);
  const id = uuidv7(at.getTime());
  await acceptSignal(
    db,
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
  return id;
}

for (const engine of ENGINES) {
  Deno.test(`${engine}: executions of several accounts are read together and written together, each its own`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const bob = await insertTrader(t.db);
    await t.db.query("UPDATE broker_accounts SET kill_switch = true WHERE id = $1", [
      bob.accountId,
    ]);
    const at = new Date("2026-11-20T14:30:00Z");
    const annIds = [await acceptBuy(t.db, ann, "a1", at), await acceptBuy(t.db, ann, "a2", at)];
    const bobIds = [await acceptBuy(t.db, bob, "b1", at)];
    const statements: string[] = [];
    const counted: Queryable = {
      query: (text, params) => {
        statements.push(text);
        return t.db.query(text, params);
      },
    };
    const batches = new ExecutionBatches(counted);
    const [annRead, bobRead] = await Promise.all([
      batches.read(annIds, ann.accountId),
      batches.read(bobIds, bob.accountId),
    ]);
    assert.equal(statements.length, 1);
    assert.deepEqual([...annRead.keys()].sort(), [...annIds].sort());
    assert.deepEqual([...bobRead.keys()], bobIds);
    assert.equal(annRead.get(annIds[0]!)?.accountKillSwitch, false);
    assert.equal(bobRead.get(bobIds[0]!)?.accountKillSwitch, true);

    await Promise.all([
      batches.write(annIds.map((id, i) => settledBuy(ann, id, at, i + 1))),
      batches.write(bobIds.map((id) => settledBuy(bob, id, at))),
    ]);
    assert.equal(statements.length, 2, "one write for both accounts");
    const positions = await t.db.query<{ account_id: string; quantity: string }>(
      "SELECT account_id, quantity::text FROM positions ORDER BY quantity",
    );
    assert.deepEqual(positions.map((p) => [p.account_id, Number(p.quantity)]), [
      [bob.accountId, 1],
      [ann.accountId, 2],
    ]);
    const journal = await t.db.query<{ user_id: string; account_id: string; n: number }>(
      `SELECT user_id, account_id, count(*)::int AS n FROM journal WHERE event <> 'signal.accepted'
       GROUP BY user_id, account_id ORDER BY n`,
    );
    assert.deepEqual(journal.map((j) => [j.user_id, j.account_id, j.n]), [
      [bob.userId, bob.accountId, 4],
      [ann.userId, ann.accountId, 8],
    ]);
    const trades = await t.db.query<{ account_id: string; quantity: string }>(
      "SELECT account_id, quantity::text FROM trades WHERE status = 'open' ORDER BY quantity",
    );
    assert.deepEqual(trades.map((p) => [p.account_id, Number(p.quantity)]), [
      [bob.accountId, 1],
      [ann.accountId, 2],
    ]);
  });

  Deno.test(`${engine}: a run that cannot be written fails alone; the other accounts' runs of its batch are written`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const bob = await insertTrader(t.db);
    const at = new Date("2026-11-20T14:30:00Z");
    const annId = await acceptBuy(t.db, ann, "a1", at);
    const bobId = await acceptBuy(t.db, bob, "b1", at);
    await setSignalStatus(t.db, bobId, "rejected", "gone", at, {
      userId: bob.userId,
      accountId: bob.accountId,
    });
    let down = false;
    const statements: string[] = [];
    const flaky: Queryable = {
      query: (text, params) => {
        statements.push(text);
        return down
          ? Promise.reject(new DbUnavailableError("Cannot reach the database: refused"))
          : t.db.query(text, params);
      },
    };
    const batches = new ExecutionBatches(flaky);
    const [annWrite, bobWrite] = await Promise.allSettled([
      batches.write([settledBuy(ann, annId, at)]),
      batches.write([settledBuy(bob, bobId, at)]),
    ]);
    assert.equal(annWrite.status, "fulfilled");
    assert.equal(bobWrite.status, "rejected");
    assert.match(String((bobWrite as PromiseRejectedResult).reason), /finished already/);
    assert.equal(statements.length, 3, "the batch, then each run on its own");
    const orders = await t.db.query<{ account_id: string }>("SELECT account_id FROM orders");
    assert.deepEqual(orders.map((o) => o.account_id), [ann.accountId]);

    // With the database unreachable, every run of the batch fails, none retried alone.
    const annNext = await acceptBuy(t.db, ann, "a2", at);
    const carol = await insertTrader(t.db);
    const carolId = await acceptBuy(t.db, carol, "c1", at);
    down = true;
    statements.length = 0;
    const failed = await Promise.allSettled([
      batches.write([settledBuy(ann, annNext, at)]),
      batches.write([settledBuy(carol, carolId, at)]),
    ]);
    assert.ok(failed.every((f) => f.status === "rejected" && isDbUnavailable(f.reason)));
    assert.equal(statements.length, 1);
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

for (const engine of ENGINES) {
  Deno.test(`${engine}: a split close and its entry are written together, once, and the entry is claimable only after the close ends`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const at = new Date("2026-11-20T14:30:00Z");
    const closeId = await acceptBuy(t.db, trader, "flip", at);
    const entry = { id: uuidv7(at.getTime()), quantity: "3" };
    const close = { ...marketBuyOrder(trader, closeId, uuidv7(at.getTime())), quantity: "2" };

    const first = await createSplitClose(t.db, close, at, entry);
    assert.deepEqual([first.created, first.order.quantity], [true, "2"]);
    // Written again (a retry after a crash): the same order, no second entry.
    const again = await createSplitClose(t.db, { ...close, id: uuidv7(at.getTime()) }, at, {
      id: uuidv7(at.getTime()),
      quantity: "3",
    });
    assert.deepEqual([again.created, again.order.id], [false, close.id]);
    const entries = await t.db.query<
      { id: string; quantity: string; status: string; received_at: Date; dedup_key: string }
    >(
      `SELECT id, quantity::text AS quantity, status, received_at, dedup_key FROM signals
       WHERE parent_signal_id = $1`,
      [closeId],
    );
    assert.deepEqual(
      entries.map((e) => [e.id, e.quantity, e.status, e.received_at.getTime(), e.dedup_key]),
      [[entry.id, "3", "accepted", at.getTime(), `split:${closeId}`]],
    );
    assert.equal(await splitEntryOf(t.db, closeId), entry.id);
    assert.deepEqual(await waitingEntries(t.db, trader.accountId), new Map([[closeId, entry.id]]));
    const journal = await t.db.query<{ signal_id: string; event: string }>(
      "SELECT signal_id, event FROM journal WHERE event IN ('signal.split', 'signal.accepted') ORDER BY id",
    );
    assert.deepEqual(journal.map((j) => [j.signal_id, j.event]), [
      [closeId, "signal.accepted"],
      [closeId, "signal.split"],
      [entry.id, "signal.accepted"],
    ]);

    // The close is not finished: the entry cannot be claimed, however it is told to run.
    const claimEntry = () =>
      claimForExecution(t.db, entry.id, trader.accountId, at, { recovering: false });
    assert.ok(await claimForExecution(t.db, closeId, trader.accountId, at, { recovering: false }));
    assert.equal(await claimEntry(), null);
    assert.equal((await endedSignals(t.db, [closeId, entry.id])).length, 0);
    await setSignalStatus(t.db, closeId, "filled", null, at, {
      userId: trader.userId,
      accountId: trader.accountId,
    });
    assert.deepEqual([...await endedSignals(t.db, [closeId, entry.id])], [
      { id: closeId, status: "filled", reason: null },
    ]);
    const claimed = await claimEntry();
    assert.deepEqual([claimed?.signal.id, claimed?.signal.parentSignalId, claimed?.signal.status], [
      entry.id,
      closeId,
      "executing",
    ]);
    assert.deepEqual(await waitingEntries(t.db, trader.accountId), new Map());
  });

  Deno.test(`${engine}: a split whose entry cannot be written writes no close either`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const at = new Date("2026-11-20T14:30:00Z");
    const closeId = await acceptBuy(t.db, trader, "flip", at);
    const close = marketBuyOrder(trader, closeId, uuidv7(at.getTime()));
    // An entry id that is taken: its INSERT fails inside the transaction.
    await assert.rejects(createSplitClose(t.db, close, at, { id: closeId, quantity: "1" }));
    const [orders] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM orders");
    assert.equal(orders!.n, 0);
    const [signals] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM signals");
    assert.equal(signals!.n, 1);
  });
}
