import assert from "node:assert/strict";
import { memoryLogger } from "../lib/log.ts";
import { createAlpacaBroker, normalizeStatus, toBrokerOrder } from "./alpaca.ts";
import { type Broker, BrokerError, type OrderRequest } from "./broker.ts";
import { type FakeAlpaca, type FakeAlpacaOptions, startFakeAlpaca } from "../tests/fakes/alpaca.ts";

const KEY_ID = "PKTESTKEY0000000000";
const SECRET = "s3cr3t-alpaca-secret-key-value";

interface Setup extends AsyncDisposable {
  fake: FakeAlpaca;
  broker: Broker;
  lines: Record<string, unknown>[];
}

function setup(
  options: { timeoutMs?: number; secretKey?: string; fake?: FakeAlpacaOptions } = {},
): Setup {
  const fake = startFakeAlpaca({
    keyId: KEY_ID,
    secretKey: SECRET,
    prices: { AAPL: "190.25", TSLA: "250" },
    ...options.fake,
  });
  const { log, lines } = memoryLogger();
  const broker = createAlpacaBroker({
    keyId: KEY_ID,
    secretKey: options.secretKey ?? SECRET,
    paper: true,
    baseUrl: fake.url,
    timeoutMs: options.timeoutMs,
    log,
  });
  return { fake, broker, lines, [Symbol.asyncDispose]: () => fake.close() };
}

function order(overrides: Partial<OrderRequest> = {}): OrderRequest {
  return {
    clientOrderId: `sig_${crypto.randomUUID()}`,
    symbol: "AAPL",
    side: "buy",
    quantity: "3",
    type: "market",
    timeInForce: "day",
    ...overrides,
  };
}

function postCount(fake: FakeAlpaca): number {
  return fake.requests.filter((r) => r.method === "POST" && r.path === "/v2/orders").length;
}

async function brokerError(promise: Promise<unknown>): Promise<BrokerError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BrokerError, `expected a BrokerError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

function assertNoSecret(t: Setup, error?: BrokerError) {
  const everything = JSON.stringify(t.lines) + (error ? error.message + error.reason : "");
  assert.ok(!everything.includes(SECRET), "the secret key leaked");
}

Deno.test("alpaca broker places a market order that fills at the price and reads it back", async () => {
  await using t = setup();
  const request = order();
  const placed = await t.broker.placeOrder(request);

  const wire = t.fake.orders.get(request.clientOrderId);
  assert.equal(wire?.qty, "3");
  assert.equal(wire?.type, "market");
  assert.equal(wire?.time_in_force, "day");
  assert.equal(placed.clientOrderId, request.clientOrderId);
  assert.equal(placed.id, wire?.id);
  assert.equal(placed.status, "filled");
  assert.equal(placed.brokerStatus, "filled");
  assert.equal(placed.filledQuantity, "3");
  assert.equal(placed.averageFillPrice, "190.25");
  assert.deepEqual(placed.fills.map((f) => [f.id, f.quantity, f.price, f.fee]), [
    [`${placed.id}:fill`, "3", "190.25", "0"],
  ]);
  assert.ok(placed.fills[0]!.at instanceof Date);
  assert.equal(placed.legs, undefined);

  assert.deepEqual(await t.broker.getOrder(placed.id), placed);
  assert.deepEqual(await t.broker.getOrderByClientId(request.clientOrderId), placed);
  assert.equal(postCount(t.fake), 1);
  assertNoSecret(t);
});

Deno.test("alpaca broker keeps a market order pending when the fake does not fill it", async () => {
  await using t = setup({ fake: { fillMarketOrders: false } });
  const placed = await t.broker.placeOrder(order());
  assert.equal(placed.status, "pending");
  assert.equal(placed.brokerStatus, "accepted");
  assert.equal(placed.filledQuantity, "0");
  assert.equal(placed.averageFillPrice, undefined);
  assert.deepEqual(placed.fills, []);
});

Deno.test("alpaca broker places limit, stop and stop_limit orders with their prices", async () => {
  await using t = setup();
  const cases: Partial<OrderRequest>[] = [
    { type: "limit", limitPrice: "180.5", timeInForce: "gtc" },
    { type: "stop", stopPrice: "200", side: "sell" },
    { type: "stop_limit", stopPrice: "200", limitPrice: "201.5" },
  ];
  for (const overrides of cases) {
    const request = order(overrides);
    const placed = await t.broker.placeOrder(request);
    const wire = t.fake.orders.get(request.clientOrderId)!;
    assert.equal(wire.type, request.type);
    assert.equal(wire.limit_price, request.limitPrice ?? null);
    assert.equal(wire.stop_price, request.stopPrice ?? null);
    assert.equal(wire.time_in_force, request.timeInForce);
    assert.equal(wire.side, request.side);
    assert.equal(placed.type, request.type);
    assert.equal(placed.status, "pending");
    assert.equal(placed.brokerStatus, "new");
    assert.deepEqual(placed.fills, []);
  }
});

Deno.test("alpaca broker reports a partial fill without fills, then one aggregate fill", async () => {
  await using t = setup();
  const placed = await t.broker.placeOrder(
    order({ type: "limit", limitPrice: "180", quantity: "10" }),
  );

  t.fake.fillOrder(placed.id, "4", "180");
  const partial = await t.broker.getOrder(placed.id);
  assert.equal(partial.status, "partially_filled");
  assert.equal(partial.filledQuantity, "4");
  assert.equal(partial.averageFillPrice, "180");
  assert.deepEqual(partial.fills, []);

  t.fake.fillOrder(placed.id, "6", "179");
  const filled = await t.broker.getOrder(placed.id);
  assert.equal(filled.status, "filled");
  assert.equal(filled.filledQuantity, "10");
  assert.equal(filled.averageFillPrice, "179.4");
  assert.deepEqual(filled.fills.map((f) => [f.id, f.quantity, f.price]), [
    [`${placed.id}:fill`, "10", "179.4"],
  ]);
});

Deno.test("alpaca broker places a bracket order and maps its two legs", async () => {
  await using t = setup({ fake: { fillMarketOrders: false } });
  const request = order({
    type: "limit",
    limitPrice: "190",
    timeInForce: "gtc",
    takeProfit: { limitPrice: "200" },
    stopLoss: { stopPrice: "185", limitPrice: "184.5" },
  });
  const placed = await t.broker.placeOrder(request);

  const wire = t.fake.orders.get(request.clientOrderId)!;
  assert.equal(wire.order_class, "bracket");
  assert.equal(placed.status, "pending");
  assert.equal(placed.legs?.length, 2);
  const [takeProfit, stopLoss] = placed.legs!;
  assert.deepEqual(
    [takeProfit!.type, takeProfit!.side, takeProfit!.quantity, takeProfit!.brokerStatus],
    ["limit", "sell", "3", "held"],
  );
  assert.deepEqual([stopLoss!.type, stopLoss!.side, stopLoss!.status], [
    "stop_limit",
    "sell",
    "pending",
  ]);
  assert.equal(wire.legs![1]!.stop_price, "185");
  assert.equal(wire.legs![1]!.limit_price, "184.5");

  t.fake.fillOrder(placed.id);
  t.fake.fillOrder(takeProfit!.id);
  const after = await t.broker.getOrderByClientId(request.clientOrderId);
  assert.equal(after?.status, "filled");
  assert.deepEqual(after?.legs?.map((l) => l.status), ["filled", "canceled"]);
  assert.equal(after?.legs?.[0]?.fills[0]?.id, `${takeProfit!.id}:fill`);
});

Deno.test("alpaca broker lists the open orders in one call, a bracket's legs each on its own", async () => {
  await using t = setup();
  // A filled market order (not open), a resting limit, and a filled bracket entry whose two legs
  // are working.
  await t.broker.placeOrder(order());
  const resting = await t.broker.placeOrder(
    order({ type: "limit", limitPrice: "150", timeInForce: "gtc" }),
  );
  const bracket = await t.broker.placeOrder(order({
    symbol: "TSLA",
    takeProfit: { limitPrice: "300" },
    stopLoss: { stopPrice: "200" },
  }));
  assert.equal(bracket.status, "filled");
  const seen = t.fake.requests.length;

  const open = await t.broker.openOrders();
  assert.deepEqual(
    t.fake.requests.slice(seen).map((
      r,
    ) => [r.method, r.path, new URLSearchParams(r.query).get("status")]),
    [["GET", "/v2/orders", "open"]],
  );
  const legIds = bracket.legs!.map((l) => l.id);
  assert.deepEqual(open.map((o) => o.id).sort(), [resting.id, ...legIds].sort());
  assert.ok(open.every((o) => o.legs === undefined && o.status === "pending"));
  assert.deepEqual(
    open.filter((o) => o.symbol === "TSLA").map((o) => [o.side, o.type]).sort(),
    [["sell", "limit"], ["sell", "stop"]],
  );

  // A leg that fills (and the other, canceled by it) leaves the list.
  t.fake.fillOrder(legIds[0]!);
  assert.deepEqual((await t.broker.openOrders()).map((o) => o.id), [resting.id]);
});

Deno.test("alpaca broker returns null for an unknown client order id", async () => {
  await using t = setup();
  assert.equal(await t.broker.getOrderByClientId("sig_never_placed"), null);
  const error = await brokerError(t.broker.getOrder("00000000-0000-4000-8000-000000000000"));
  assert.equal(error.kind, "not_found");
  assert.equal(error.status, 404);
  assert.equal(error.reason, "order not found");
});

Deno.test("alpaca broker reports a reused client order id as a duplicate", async () => {
  await using t = setup();
  const request = order({ clientOrderId: "sig_dup" });
  await t.broker.placeOrder(request);
  const error = await brokerError(t.broker.placeOrder(request));
  assert.equal(error.kind, "duplicate");
  assert.equal(error.status, 422);
  assert.equal(error.ambiguous, false);
  assert.equal(error.retryable, false);
  assert.equal(
    error.message,
    'Cannot place order "sig_dup" at Alpaca: client_order_id must be unique',
  );
  assert.equal(postCount(t.fake), 2);
});

Deno.test("alpaca broker reports a 500 on an order POST as unavailable and ambiguous, sent once", async () => {
  await using t = setup();
  t.fake.faults.add({ method: "POST", path: "/v2/orders", kind: "status", status: 500 });
  const error = await brokerError(t.broker.placeOrder(order({ clientOrderId: "sig_500" })));
  assert.equal(error.kind, "unavailable");
  assert.equal(error.status, 500);
  assert.equal(error.ambiguous, true);
  assert.equal(error.retryable, true);
  assert.equal(error.message, 'Cannot place order "sig_500" at Alpaca: internal server error');
  assert.equal(postCount(t.fake), 1);
});

Deno.test("alpaca broker reports a 503 on a read as unavailable, not ambiguous, asked once", async () => {
  await using t = setup();
  t.fake.faults.add({
    path: "/v2/account",
    kind: "status",
    status: 503,
    body: { message: "down" },
  });
  const error = await brokerError(t.broker.account());
  assert.equal(error.kind, "unavailable");
  assert.equal(error.ambiguous, false);
  assert.equal(error.message, "Cannot read the account at Alpaca: down");
  assert.equal(t.fake.requests.filter((r) => r.path === "/v2/account").length, 1);
});

Deno.test("alpaca broker reports a 429 as rate_limited with Retry-After, not ambiguous", async () => {
  await using t = setup();
  t.fake.faults.add({
    method: "POST",
    kind: "status",
    status: 429,
    headers: { "Retry-After": "7" },
    body: { code: 42910000, message: "rate limit exceeded" },
  });
  const error = await brokerError(t.broker.placeOrder(order()));
  assert.equal(error.kind, "rate_limited");
  assert.equal(error.retryAfterS, 7);
  assert.equal(error.ambiguous, false);
  assert.equal(error.retryable, true);
  assert.equal(error.reason, "rate limit exceeded");
  assert.equal(postCount(t.fake), 1);
});

Deno.test("alpaca broker reports 401 and a bare 403 as auth, never showing the secret", async () => {
  await using t = setup({ secretKey: "wrong-secret" });
  const wrong = await brokerError(t.broker.placeOrder(order()));
  assert.equal(wrong.kind, "auth");
  assert.equal(wrong.status, 401);
  assert.equal(wrong.retryable, false);
  assert.equal(wrong.reason, "request is not authorized");
  assert.ok(!wrong.message.includes("wrong-secret"));
  assert.ok(!JSON.stringify(t.lines).includes("wrong-secret"));

  t.fake.faults.add({ kind: "status", status: 403, body: { message: "forbidden." } });
  const forbidden = await brokerError(t.broker.account());
  assert.equal(forbidden.kind, "auth");
  assert.equal(forbidden.status, 403);
});

Deno.test("alpaca broker reports a 403 order refusal as rejected with the broker's reason", async () => {
  await using t = setup();
  t.fake.faults.add({
    method: "POST",
    kind: "status",
    status: 403,
    body: { code: 40310000, message: "insufficient buying power", buying_power: "12.5" },
  });
  const error = await brokerError(t.broker.placeOrder(order({ clientOrderId: "sig_poor" })));
  assert.equal(error.kind, "rejected");
  assert.equal(error.message, 'Cannot place order "sig_poor" at Alpaca: insufficient buying power');
  assert.equal(error.ambiguous, false);
  assertNoSecret(t, error);
});

Deno.test("alpaca broker reports another 422 as rejected with the broker's message", async () => {
  await using t = setup();
  const error = await brokerError(t.broker.placeOrder(order({ type: "limit" })));
  assert.equal(error.kind, "rejected");
  assert.equal(error.status, 422);
  assert.equal(error.reason, "limit_price is required");
  assert.equal(error.retryable, false);

  t.fake.faults.add({
    kind: "status",
    status: 422,
    body: { code: 40010001, message: "us_equity orders not allowed for account" },
  });
  const other = await brokerError(t.broker.placeOrder(order()));
  assert.equal(other.kind, "rejected");
  assert.equal(other.reason, "us_equity orders not allowed for account");
});

Deno.test("alpaca broker gives up on a silent broker within timeoutMs, as network and ambiguous", async () => {
  await using t = setup({ timeoutMs: 300 });
  t.fake.faults.add({ method: "POST", path: "/v2/orders", kind: "timeout" });
  const started = performance.now();
  const error = await brokerError(t.broker.placeOrder(order({ clientOrderId: "sig_slow" })));
  const elapsed = performance.now() - started;
  assert.equal(error.kind, "network");
  assert.equal(error.ambiguous, true);
  assert.equal(error.retryable, true);
  assert.equal(error.status, undefined);
  assert.match(
    error.message,
    /^Cannot place order "sig_slow" at Alpaca: request timed out after 300 ms$/,
  );
  assert.ok(elapsed >= 290 && elapsed < 2_000, `gave up after ${elapsed} ms`);
  assert.equal(postCount(t.fake), 1);
});

Deno.test("alpaca broker finishes a slow answer that beats the timeout", async () => {
  await using t = setup({ timeoutMs: 2_000 });
  t.fake.faults.add({ path: "/v2/clock", kind: "delay", ms: 50 });
  const clock = await t.broker.clock();
  assert.equal(clock.isOpen, true);
});

Deno.test("alpaca broker reports a dropped order POST as network and ambiguous, and the order is found", async () => {
  await using t = setup();
  const request = order({ clientOrderId: "sig_dropped" });
  t.fake.faults.add({ method: "POST", path: "/v2/orders", kind: "drop_after_record" });
  const error = await brokerError(t.broker.placeOrder(request));
  assert.equal(error.kind, "network");
  assert.equal(error.ambiguous, true);
  assert.equal(
    error.message,
    'Cannot place order "sig_dropped" at Alpaca: no answer: connection closed before message completed',
  );
  assert.equal(postCount(t.fake), 1);

  // The reconcile path: look the order up before ever submitting again.
  const found = await t.broker.getOrderByClientId("sig_dropped");
  assert.equal(found?.clientOrderId, "sig_dropped");
  assert.equal(found?.status, "filled");
  assert.equal(postCount(t.fake), 1);
  assertNoSecret(t, error);
});

Deno.test("alpaca broker reports a refused connection as network", async () => {
  const { log } = memoryLogger();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const broker = createAlpacaBroker({
    keyId: KEY_ID,
    secretKey: SECRET,
    paper: true,
    baseUrl: `http://127.0.0.1:${port}/`,
    log,
  });
  const error = await brokerError(broker.placeOrder(order()));
  assert.equal(error.kind, "network");
  assert.equal(error.ambiguous, true);
  const read = await brokerError(broker.positions());
  assert.equal(read.kind, "network");
  assert.equal(read.ambiguous, false);
});

Deno.test("alpaca broker stops a call when the caller's signal aborts", async () => {
  await using t = setup();
  t.fake.faults.add({ path: "/v2/positions", kind: "timeout" });
  const controller = new AbortController();
  const pending = brokerError(t.broker.positions(controller.signal));
  controller.abort();
  const error = await pending;
  assert.equal(error.kind, "network");
  assert.equal(error.reason, "request aborted");
});

Deno.test("alpaca broker cancels a working order, refuses a filled one, misses an unknown one", async () => {
  await using t = setup();
  const working = await t.broker.placeOrder(order({ type: "limit", limitPrice: "100" }));
  await t.broker.cancelOrder(working.id);
  const canceled = await t.broker.getOrder(working.id);
  assert.equal(canceled.status, "canceled");
  assert.deepEqual(canceled.fills, []);
  assert.equal(t.fake.requests.filter((r) => r.method === "DELETE").length, 1);

  const filled = await t.broker.placeOrder(order());
  const refused = await brokerError(t.broker.cancelOrder(filled.id));
  assert.equal(refused.kind, "rejected");
  assert.equal(refused.reason, "order is not cancelable");

  const missing = await brokerError(t.broker.cancelOrder("00000000-0000-4000-8000-000000000000"));
  assert.equal(missing.kind, "not_found");
});

Deno.test("alpaca broker reads account, signed positions and the clock", async () => {
  await using t = setup({ fake: { cash: "10000", marketOpen: false } });
  await t.broker.placeOrder(order({ symbol: "AAPL", quantity: "10" }));
  await t.broker.placeOrder(order({ symbol: "TSLA", quantity: "2", side: "sell" }));
  t.fake.setPrice("AAPL", "200.25");

  const account = await t.broker.account();
  assert.deepEqual(account, {
    currency: "USD",
    equity: "10100",
    cash: "8597.5",
    buyingPower: "8597.5",
  });

  const positions = await t.broker.positions();
  assert.deepEqual(
    positions.sort((a, b) => a.symbol.localeCompare(b.symbol)),
    [
      { symbol: "AAPL", quantity: "10", averageEntryPrice: "190.25", unrealizedPnl: "100" },
      { symbol: "TSLA", quantity: "-2", averageEntryPrice: "250", unrealizedPnl: "0" },
    ],
  );

  const clock = await t.broker.clock();
  assert.equal(clock.isOpen, false);
  assert.ok(clock.nextOpen instanceof Date && clock.nextClose instanceof Date);
  assert.ok(clock.nextOpen.getTime() > clock.nextClose.getTime());
});

Deno.test("alpaca status normalization covers every Alpaca word", () => {
  const table: [string, boolean, string][] = [
    ["new", false, "pending"],
    ["accepted", false, "pending"],
    ["pending_new", false, "pending"],
    ["accepted_for_bidding", false, "pending"],
    ["pending_cancel", true, "partially_filled"],
    ["pending_replace", false, "pending"],
    ["calculated", false, "pending"],
    ["held", false, "pending"],
    ["done_for_day", false, "pending"],
    ["done_for_day", true, "partially_filled"],
    ["stopped", false, "pending"],
    ["suspended", false, "pending"],
    ["partially_filled", true, "partially_filled"],
    ["filled", true, "filled"],
    ["canceled", false, "canceled"],
    ["canceled", true, "canceled"],
    ["replaced", false, "canceled"],
    ["expired", false, "expired"],
    ["rejected", false, "rejected"],
    ["something_new", false, "pending"],
  ];
  for (const [word, anyFilled, expected] of table) {
    assert.equal(normalizeStatus(word, anyFilled), expected, `${word} (filled: ${anyFilled})`);
  }
});

Deno.test("alpaca order mapping gives a canceled partial fill one final fill and names a replacement", () => {
  const base = {
    id: "o1",
    clientOrderId: "sig_1",
    symbol: "AAPL",
    side: "buy" as const,
    qty: "10",
    type: "limit" as const,
    timeInForce: "day" as const,
    notional: null,
    updatedAt: new Date("2026-01-05T15:00:00Z"),
  };
  const canceled = toBrokerOrder({
    ...base,
    status: "canceled",
    filledQty: "4",
    filledAvgPrice: "101.5",
  });
  assert.equal(canceled.status, "canceled");
  assert.deepEqual(canceled.fills, [{
    id: "o1:fill",
    quantity: "4",
    price: "101.5",
    fee: "0",
    at: new Date("2026-01-05T15:00:00Z"),
  }]);

  const replaced = toBrokerOrder({ ...base, status: "replaced", filledQty: "0", replacedBy: "o2" });
  assert.equal(replaced.status, "canceled");
  assert.equal(replaced.reason, 'replaced by order "o2"');
  assert.deepEqual(replaced.fills, []);
});
