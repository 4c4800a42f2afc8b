import assert from "node:assert/strict";
import {
  canonicalJson,
  dedupKey,
  MAX_DEPTH,
  parsePayload,
  PayloadError,
  redactKey,
  validateSignal,
} from "./signal.ts";

function valid(payload: Record<string, unknown>) {
  const result = validateSignal(payload);
  assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
  return result.signal;
}

function problems(payload: Record<string, unknown>) {
  const result = validateSignal(payload);
  assert.ok(!result.ok, "expected problems");
  return result.problems;
}

Deno.test("a TradingView strategy alert with string placeholders filled in validates and normalizes", () => {
  const s = valid({
    key: "whk_x",
    ticker: "nasdaq:aapl",
    action: "BUY",
    contracts: "2.50",
    price: "189.1200",
    id: "long-entry-1",
    time: "2026-11-20T14:30:00Z",
    strategy: { position_size: "2.5", market_position: "long" },
  });
  assert.equal(s.ticker, "NASDAQ:AAPL");
  assert.equal(s.action, "buy");
  assert.equal(s.side, "buy");
  assert.equal(s.quantity, "2.5");
  assert.equal(s.price, "189.12");
  assert.equal(s.orderType, "market");
  assert.equal(s.timeInForce, "day");
  assert.equal(s.account, "paper");
  assert.equal(s.senderId, "long-entry-1");
  assert.equal(s.time?.toISOString(), "2026-11-20T14:30:00.000Z");
});

Deno.test("actions map to sides; close, exit and flat need no quantity", () => {
  assert.equal(valid({ ticker: "ES1!", action: "long", quantity: 1 }).side, "buy");
  assert.equal(valid({ ticker: "ES1!", action: "short", quantity: 1 }).side, "sell");
  for (const action of ["close", "exit", "flat"]) {
    const s = valid({ ticker: "ES1!", action });
    assert.equal(s.side, null);
    assert.equal(s.quantity, null);
  }
});

Deno.test("limit, stop and bracket orders carry their prices", () => {
  const s = valid({
    ticker: "MSFT",
    action: "buy",
    quantity: 10,
    order_type: "stop-limit",
    limit_price: 101,
    stop_price: "100.5",
    take_profit: 120,
    stop_loss: 95,
    time_in_force: "GTC",
  });
  assert.deepEqual(
    [s.orderType, s.limitPrice, s.stopPrice, s.takeProfit, s.stopLoss, s.timeInForce],
    ["stop_limit", "101", "100.5", "120", "95", "gtc"],
  );
});

Deno.test("every bad field is named in one answer", () => {
  const found = problems({
    ticker: "",
    action: "buyy",
    quantity: -1,
    order_type: "limit",
    qty: 3,
    time: "yesterday",
  });
  const fields = found.map((p) => p.field).sort();
  assert.deepEqual(fields, ["action", "limit_price", "qty", "quantity", "ticker", "time"]);
  assert.match(found.find((p) => p.field === "qty")!.message, /did you mean "quantity"/);
  assert.match(found.find((p) => p.field === "action")!.message, /must be one of buy, sell/);
});

Deno.test("unfilled TradingView placeholders are named as such", () => {
  const found = problems({
    ticker: "{{ticker}}",
    action: "{{strategy.order.action}}",
    quantity: "{{strategy.order.contracts}}",
  });
  assert.equal(found.length, 3);
  for (const p of found) assert.match(p.message, /unfilled TradingView placeholder/);
});

Deno.test("quantity rules: required to open, positive, sane, and agreeing with contracts", () => {
  assert.match(
    problems({ ticker: "AAPL", action: "buy" })[0]!.message,
    /quantity \(or contracts\) is required/,
  );
  for (const q of [0, "0", "-2", "1e3", "abc", Infinity, "1234567890123456"]) {
    assert.ok(
      problems({ ticker: "AAPL", action: "buy", quantity: q }).some((p) => p.field === "quantity"),
      String(q),
    );
  }
  assert.ok(
    problems({ ticker: "AAPL", action: "buy", quantity: 1, contracts: 2 }).some((p) =>
      p.field === "contracts"
    ),
  );
  assert.equal(valid({ ticker: "AAPL", action: "buy", quantity: 0.0001 }).quantity, "0.0001");
});

Deno.test("bracket legs must sit on the right sides", () => {
  assert.match(
    problems({ ticker: "AAPL", action: "buy", quantity: 1, take_profit: 90, stop_loss: 95 })[0]!
      .message,
    /above stop_loss/,
  );
  assert.match(
    problems({ ticker: "AAPL", action: "sell", quantity: 1, take_profit: 100, stop_loss: 95 })[0]!
      .message,
    /below stop_loss/,
  );
  assert.ok(problems({ ticker: "AAPL", action: "close", take_profit: 100 }).length > 0);
});

Deno.test("parsePayload rejects empty, non-JSON, non-object, too deep and too long bodies", () => {
  for (const body of ["", "   ", "buy AAPL 1", "[1,2]", "42", "null", '"text"']) {
    assert.throws(() => parsePayload(body), PayloadError, body);
  }
  let deep: unknown = 1;
  for (let i = 0; i < MAX_DEPTH; i++) deep = { d: deep };
  assert.doesNotThrow(() => parsePayload(JSON.stringify(deep)), "five levels are allowed");
  assert.throws(() => parsePayload(JSON.stringify({ d: deep })), /nests deeper than 5/);
  assert.throws(
    () => parsePayload(JSON.stringify({ a: [[[[[1]]]]] })),
    /nests deeper than 5/,
    "arrays count",
  );
  assert.throws(
    () => parsePayload(JSON.stringify({ comment: "x".repeat(10_001) })),
    /longer than 10000/,
  );
  assert.throws(() => parsePayload("[".repeat(100_000)), PayloadError);
  assert.deepEqual(parsePayload('\uFEFF {"a":1} '), { a: 1 });
});

Deno.test("dedup key is the sender id when given, else a hash of the normalized signal", async () => {
  const a = valid({ ticker: "AAPL", action: "buy", quantity: "1", strategy: { b: 1, a: 2 } });
  const b = valid({ action: "buy", quantity: 1, ticker: "aapl", strategy: { a: 2, b: 1 } });
  const c = valid({ ticker: "AAPL", action: "buy", quantity: 2 });
  assert.equal(await dedupKey(a), await dedupKey(b));
  assert.notEqual(await dedupKey(a), await dedupKey(c));
  assert.match(await dedupKey(a), /^sha256:[0-9a-f]{64}$/);
  assert.equal(
    await dedupKey(valid({ ticker: "AAPL", action: "buy", quantity: 1, id: "alert-7" })),
    "id:alert-7",
  );
});

Deno.test("canonical JSON sorts keys at every depth; redactKey blanks the key", () => {
  assert.equal(
    canonicalJson({ b: { z: 1, y: [{ d: 1, c: 2 }] }, a: 0 }),
    '{"a":0,"b":{"y":[{"c":2,"d":1}],"z":1}}',
  );
  const body = '{"key":"whk_secret","ticker":"AAPL"}';
  const redacted = redactKey(body, JSON.parse(body));
  assert.ok(!redacted.includes("whk_secret"));
  assert.match(redacted, /"ticker":"AAPL"/);
});
