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
