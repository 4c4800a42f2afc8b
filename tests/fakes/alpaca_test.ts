import assert from "node:assert/strict";
import { startFakeAlpaca } from "./alpaca.ts";

const AUTH = { "APCA-API-KEY-ID": "test-key-id", "APCA-API-SECRET-KEY": "test-secret-key" };

async function call(url: string, init: RequestInit = {}) {
  const response = await fetch(url, { ...init, headers: { ...AUTH, ...init.headers } });
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

Deno.test("fake alpaca refuses requests without or with wrong APCA headers", async () => {
  await using fake = startFakeAlpaca();
  const missing = await fetch(`${fake.url}/v2/account`);
  assert.equal(missing.status, 403);
  assert.deepEqual(await missing.json(), { message: "forbidden." });
  const wrong = await call(`${fake.url}/v2/account`, {
    headers: { "APCA-API-SECRET-KEY": "nope" },
  });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.code, 40110000);
  const other = { "APCA-API-KEY-ID": "other-key-id", "APCA-API-SECRET-KEY": "other-secret" };
  assert.equal((await call(`${fake.url}/v2/account`, { headers: other })).status, 401);
  fake.addKey("other-key-id", "other-secret");
  assert.equal((await call(`${fake.url}/v2/account`, { headers: other })).status, 200);
  assert.equal((await call(`${fake.url}/v2/account`)).status, 200, "the first pair still works");
  assert.deepEqual(fake.requests.map((r) => r.keyId), [
    null,
    "test-key-id",
    "other-key-id",
    "other-key-id",
    "test-key-id",
  ]);
});

Deno.test("fake alpaca writes orders in Alpaca's wire format, numbers as strings", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190.25" } });
  const { status, body } = await call(`${fake.url}/v2/orders`, {
    method: "POST",
    body: JSON.stringify({
      client_order_id: "c1",
      symbol: "AAPL",
      qty: "2",
      side: "buy",
      type: "market",
      time_in_force: "day",
    }),
  });
  assert.equal(status, 200);
  for (const field of ["id", "created_at", "updated_at", "submitted_at", "filled_at"]) {
    assert.equal(typeof body[field], "string", field);
  }
  assert.deepEqual(
    [body.qty, body.filled_qty, body.filled_avg_price, body.status, body.order_class, body.legs],
    ["2", "2", "190.25", "filled", "", null],
  );
  assert.equal(body.order_type, body.type);
  const byClient = await call(`${fake.url}/v2/orders:by_client_order_id?client_order_id=c1`);
  assert.deepEqual(byClient.body, body);
  const missing = await call(`${fake.url}/v2/orders/nope`);
  assert.deepEqual(missing, { status: 404, body: { code: 40410000, message: "order not found" } });
});

Deno.test("fake alpaca applies faults in order, by method and path, as many times as asked", async () => {
  await using fake = startFakeAlpaca();
  fake.faults.add({ path: "/v2/clock", kind: "status", status: 502, times: 2 });
  fake.faults.add({ path: "/v2/clock", kind: "status", status: 500, body: { message: "x" } });
  fake.faults.add({ method: "POST", kind: "status", status: 503 });
  assert.equal((await call(`${fake.url}/v2/account`)).status, 200);
  assert.equal((await call(`${fake.url}/v2/clock`)).status, 502);
  assert.equal((await call(`${fake.url}/v2/clock`)).status, 502);
  assert.deepEqual(await call(`${fake.url}/v2/clock`), { status: 500, body: { message: "x" } });
  assert.equal((await call(`${fake.url}/v2/clock`)).status, 200);
  assert.equal(fake.faults.pending, 1);
  assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.path}`).slice(0, 2), [
    "GET /v2/account",
    "GET /v2/clock",
  ]);
});

Deno.test("fake alpaca closes cleanly while a request hangs", async () => {
  const fake = startFakeAlpaca();
  fake.faults.add({ kind: "timeout" });
  const hanging = fetch(`${fake.url}/v2/account`, { headers: AUTH }).then(
    (r) => r.body?.cancel().then(() => r.status),
    () => "closed",
  );
  await fake.close();
  assert.ok(["closed", 504].includes(String(await hanging)));
});

Deno.test("fake alpaca holds shares for open exit legs: a sell they cover is 403 until they are canceled", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  const post = (body: Record<string, unknown>) =>
    call(`${fake.url}/v2/orders`, {
      method: "POST",
      body: JSON.stringify({ symbol: "AAPL", type: "market", time_in_force: "day", ...body }),
    });
  const entry = await post({
    client_order_id: "entry",
    qty: "10",
    side: "buy",
    order_class: "bracket",
    take_profit: { limit_price: "110" },
    stop_loss: { stop_price: "95" },
  });
  assert.equal(entry.status, 200);
  assert.equal(entry.body.status, "filled");
  const legs = fake.orders.get("entry")!.legs!;
  assert.deepEqual(legs.map((l) => l.status), ["new", "new"]);

  // Both legs hold the same 10 shares (one cancels the other): none is available.
  const held = await post({ client_order_id: "close-1", qty: "10", side: "sell" });
  assert.deepEqual(held, {
    status: 403,
    body: {
      code: 40310000,
      message: "insufficient qty available for order (requested: 10, available: 0)",
    },
  });
  assert.ok(!fake.orders.has("close-1"), "a refused order is not recorded");
  // Adding to the position is not limited.
  assert.equal((await post({ client_order_id: "add", qty: "2", side: "buy" })).status, 200);
  const flip = await post({ client_order_id: "flip", qty: "20", side: "sell" });
  assert.equal(flip.status, 403);
  assert.equal(
    flip.body.message,
    "insufficient qty available for order (requested: 20, available: 2)",
  );

  // One leg canceled: the other still holds the shares.
  assert.equal(
    (await call(`${fake.url}/v2/orders/${legs[0]!.id}`, { method: "DELETE" })).status,
    204,
  );
  assert.equal((await post({ client_order_id: "close-2", qty: "12", side: "sell" })).status, 403);
  assert.equal(
    (await call(`${fake.url}/v2/orders/${legs[1]!.id}`, { method: "DELETE" })).status,
    204,
  );
  const close = await post({ client_order_id: "close-3", qty: "12", side: "sell" });
  assert.equal(close.status, 200);
  assert.equal(close.body.status, "filled");
  assert.deepEqual((await call(`${fake.url}/v2/positions`)).body, []);

  // Canceling what is no longer open is refused; a short sale from flat is allowed.
  for (const id of [legs[0]!.id, fake.orders.get("close-3")!.id]) {
    assert.deepEqual(await call(`${fake.url}/v2/orders/${id}`, { method: "DELETE" }), {
      status: 422,
      body: { code: 42210000, message: "order is not cancelable" },
    });
  }
  assert.equal((await post({ client_order_id: "short", qty: "3", side: "sell" })).status, 200);
});

Deno.test("fake alpaca refuses to cancel a leg that filled (422), whose fill closed the position", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await call(`${fake.url}/v2/orders`, {
    method: "POST",
    body: JSON.stringify({
      client_order_id: "entry",
      symbol: "AAPL",
      qty: "5",
      side: "buy",
      type: "market",
      time_in_force: "gtc",
      order_class: "bracket",
      take_profit: { limit_price: "110" },
      stop_loss: { stop_price: "95" },
    }),
  });
  const [tp, sl] = fake.orders.get("entry")!.legs!;
  fake.fillOrder(tp!.id);
  assert.deepEqual([tp!.status, sl!.status], ["filled", "canceled"]);
  const refused = await call(`${fake.url}/v2/orders/${tp!.id}`, { method: "DELETE" });
  assert.equal(refused.status, 422);
  assert.equal(refused.body.message, "order is not cancelable");
  assert.deepEqual((await call(`${fake.url}/v2/positions`)).body, []);
});
