import assert from "node:assert/strict";
import { FakeClock } from "../lib/clock.ts";
import { BrokerError, type OrderRequest } from "./broker.ts";
import { FINISHED_KEPT, PaperBroker, PaperSettingsSchema } from "./paper.ts";

function broker(settings: Record<string, unknown> = {}) {
  let n = 0;
  return new PaperBroker({
    settings: PaperSettingsSchema.parse(settings),
    clock: new FakeClock(),
    newId: () => `p${++n}`,
  });
}

function order(extra: Partial<OrderRequest> = {}): OrderRequest {
  return {
    clientOrderId: crypto.randomUUID(),
    symbol: "AAPL",
    side: "buy",
    quantity: "10",
    type: "market",
    timeInForce: "day",
    referencePrice: "100",
    ...extra,
  };
}

Deno.test("paper market orders fill at the reference price moved by slippage, with fees", async () => {
  const b = broker({ slippage_bps: 10, fee_per_unit: 0.01, fee_bps: 1 });
  const buy = await b.placeOrder(order());
  assert.equal(buy.status, "filled");
  assert.equal(buy.averageFillPrice, "100.1");
  assert.equal(buy.fills[0]!.fee, "0.2001"); // 10 × 0.01 + 10 × 100.1 × 1 bp
  const sell = await b.placeOrder(order({ side: "sell", referencePrice: "110" }));
  assert.equal(sell.averageFillPrice, "109.89");
  assert.deepEqual(await b.positions(), []);
  const account = await b.account();
  assert.equal(
    account.cash,
    toCash(100_000 + (109.89 - 100.1) * 10 - 0.2001 - (0.1 + 10 * 109.89 / 10_000)),
  );
});

function toCash(n: number) {
  return String(Math.round(n * 1e10) / 1e10);
}

Deno.test("paper refuses a reused client order id and a market order with no price", async () => {
  const b = broker();
  const first = await b.placeOrder(order({ clientOrderId: "sig-1" }));
  await assert.rejects(
    b.placeOrder(order({ clientOrderId: "sig-1" })),
    (e: unknown) => e instanceof BrokerError && e.kind === "duplicate",
  );
  assert.equal((await b.getOrderByClientId("sig-1"))?.id, first.id);
  await assert.rejects(
    b.placeOrder(order({ symbol: "MSFT", referencePrice: undefined })),
    (e: unknown) =>
      e instanceof BrokerError && e.kind === "rejected" && /send "price"/.test(e.reason),
  );
  assert.equal(await b.getOrderByClientId("nope"), null);
});

Deno.test("paper limit and stop orders rest until a later price reaches them", async () => {
  const b = broker();
  const limit = await b.placeOrder(
    order({ type: "limit", limitPrice: "95", referencePrice: "100" }),
  );
  assert.equal(limit.status, "pending");
  const stop = await b.placeOrder(
    order({ side: "sell", type: "stop", stopPrice: "90", referencePrice: "100" }),
  );
  assert.equal(stop.status, "pending");
  assert.deepEqual(b.onPrice("AAPL", 97, new Date()), []);
  const filled = b.onPrice("AAPL", 94, new Date());
  assert.deepEqual(filled.map((o) => [o.id, o.status, o.averageFillPrice]), [[
    limit.id,
    "filled",
    "94",
  ]]);
  const stopped = b.onPrice("AAPL", 89, new Date());
  assert.deepEqual(stopped.map((o) => [o.id, o.averageFillPrice]), [[stop.id, "89"]]);
});

Deno.test("paper stop-limit triggers at the stop, then fills only within the limit", async () => {
  const b = broker();
  const o = await b.placeOrder(
    order({ type: "stop_limit", stopPrice: "105", limitPrice: "106", referencePrice: "100" }),
  );
  assert.deepEqual(b.onPrice("AAPL", 107, new Date()), [], "triggered above the limit: no fill");
  const filled = b.onPrice("AAPL", 105.5, new Date());
  assert.deepEqual(filled.map((x) => [x.id, x.averageFillPrice]), [[o.id, "105.5"]]);
});

Deno.test("paper bracket opens both legs after the entry fills, and one leg cancels the other", async () => {
  const b = broker();
  const entry = await b.placeOrder(
    order({ takeProfit: { limitPrice: "110" }, stopLoss: { stopPrice: "95" } }),
  );
  assert.equal(entry.status, "filled");
  assert.equal(entry.legs?.length, 2);
  const [tp, sl] = entry.legs!;
  assert.deepEqual([tp!.leg, tp!.side, tp!.type, sl!.leg, sl!.type], [
    "take_profit",
    "sell",
    "limit",
    "stop_loss",
    "stop",
  ]);
  assert.equal(tp!.clientOrderId, `${entry.clientOrderId}:tp`);
  const changed = b.onPrice("AAPL", 111, new Date());
  const byLeg = Object.fromEntries(changed.map((o) => [o.leg, o.status]));
  assert.deepEqual(byLeg, { take_profit: "filled", stop_loss: "canceled" });
  assert.deepEqual(b.onPrice("AAPL", 90, new Date()), [], "the canceled stop never fills");
  assert.deepEqual(await b.positions(), []);
});

Deno.test("paper restores open orders after a restart and fills them", async () => {
  const a = broker();
  const resting = await a.placeOrder(order({ type: "limit", limitPrice: "95" }));
  const b = broker();
  b.restore([resting], [{ symbol: "AAPL", quantity: "5", averageEntryPrice: "100" }]);
  const filled = b.onPrice("AAPL", 95, new Date());
  assert.equal(filled[0]?.id, resting.id);
  assert.deepEqual(await b.positions(), [{
    symbol: "AAPL",
    quantity: "15",
    averageEntryPrice: "96.6666666667",
  }]);
});

Deno.test("paper settings reject unknown keys and out-of-range values", () => {
  assert.throws(() => PaperSettingsSchema.parse({ slippage: 1 }));
  assert.throws(() => PaperSettingsSchema.parse({ slippage_bps: -1 }));
  assert.deepEqual(PaperSettingsSchema.parse({}), {
    slippage_bps: 0,
    fee_per_unit: 0,
    fee_bps: 0,
    starting_cash: 100_000,
  });
});

Deno.test("paper keeps a bracket's links across a restart: one leg filling cancels the other, and a working entry still opens its legs", async () => {
  const a = broker();
  const entry = await a.placeOrder(
    order({ takeProfit: { limitPrice: "110" }, stopLoss: { stopPrice: "95" } }),
  );
  const [tp, sl] = entry.legs!;
  const working = await a.placeOrder(
    order({
      symbol: "MSFT",
      type: "limit",
      limitPrice: "390",
      referencePrice: "400",
      takeProfit: { limitPrice: "420" },
      stopLoss: { stopPrice: "380" },
    }),
  );
  assert.equal(working.status, "pending");

  // What the executor hands over after a restart: the open rows, links rebuilt from the database.
  const b = broker();
  b.restore([
    { ...tp!, ocoWith: sl!.id },
    { ...sl!, ocoWith: tp!.id },
    { ...working, takeProfit: { limitPrice: "420" }, stopLoss: { stopPrice: "380" } },
  ], [{ symbol: "AAPL", quantity: "10", averageEntryPrice: "100" }]);

  const changed = b.onPrice("AAPL", 111, new Date());
  assert.deepEqual(
    changed.map((o) => [o.leg, o.status, o.parentClientOrderId]),
    [["take_profit", "filled", entry.clientOrderId], [
      "stop_loss",
      "canceled",
      entry.clientOrderId,
    ]],
  );
  assert.deepEqual(b.onPrice("AAPL", 90, new Date()), [], "the other leg never fills");
  assert.deepEqual(await b.positions(), []);

  const opened = b.onPrice("MSFT", 389, new Date());
  assert.deepEqual(opened.map((o) => [o.leg ?? "entry", o.status]), [
    ["entry", "filled"],
    ["take_profit", "pending"],
    ["stop_loss", "pending"],
  ]);
  assert.ok(opened.slice(1).every((o) => o.parentClientOrderId === working.clientOrderId));
});

Deno.test("paper never fills a canceled leg, and canceling it again changes nothing", async () => {
  const b = broker();
  const entry = await b.placeOrder(
    order({ takeProfit: { limitPrice: "110" }, stopLoss: { stopPrice: "95" } }),
  );
  const [tp, sl] = entry.legs!;
  await b.cancelOrder(tp!.id);
  await b.cancelOrder(sl!.id);
  await b.cancelOrder(sl!.id);
  assert.equal(b.hasResting("AAPL"), false);
  assert.deepEqual(b.onPrice("AAPL", 120, new Date()), []);
  assert.deepEqual(b.onPrice("AAPL", 80, new Date()), []);
  const [tpAfter, slAfter] = [await b.getOrder(tp!.id), await b.getOrder(sl!.id)];
  assert.deepEqual([tpAfter.status, slAfter.status], ["canceled", "canceled"]);
  assert.deepEqual(await b.positions(), [{
    symbol: "AAPL",
    quantity: "10",
    averageEntryPrice: "100",
  }]);
});

Deno.test("paper forgets the oldest finished orders past its bound, never an open one", async () => {
  const b = broker();
  // An order that rests from the start, then many market fills after it.
  const resting = await b.placeOrder(
    order({ type: "limit", limitPrice: "90", referencePrice: "100" }),
  );
  assert.equal(resting.status, "pending");
  const ids: string[] = [];
  for (let i = 0; i < FINISHED_KEPT + 1_500; i++) {
    const o = order({ side: i % 2 === 0 ? "buy" : "sell" });
    ids.push(o.clientOrderId);
    assert.equal((await b.placeOrder(o)).status, "filled");
  }
  // The oldest finished ones are gone; the newest FINISHED_KEPT are still readable.
  assert.equal(await b.getOrderByClientId(ids[0]!), null);
  const kept = ids.slice(-FINISHED_KEPT);
  for (const id of [kept[0]!, kept[kept.length - 1]!]) {
    assert.equal((await b.getOrderByClientId(id))?.status, "filled");
  }
  let known = 0;
  for (const id of ids) if (await b.getOrderByClientId(id)) known++;
  assert.ok(
    known >= FINISHED_KEPT && known <= FINISHED_KEPT + 1_000,
    `${known} finished orders kept`,
  );
  // The open order, older than all of them, is still in the book and still fills.
  assert.equal((await b.getOrder(resting.id)).status, "pending");
  const changed = b.onPrice("AAPL", 89, new Date());
  assert.deepEqual(changed.map((o) => [o.id, o.status]), [[resting.id, "filled"]]);
  // A kept order's client id is still refused.
  await assert.rejects(
    b.placeOrder(order({ clientOrderId: kept[kept.length - 1]! })),
    (e) => e instanceof BrokerError && e.kind === "duplicate",
  );
});
