import assert from "node:assert/strict";
import { createTestApp } from "../tests/_app.ts";
import { DbUnavailableError } from "../db/client.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";

function post(app: ReturnType<typeof createTestApp>["app"], body: unknown, ip?: string) {
  return app.request("/api/v1/webhooks/tradingview", {
    method: "POST",
    headers: { "content-type": "application/json", ...(ip ? { "x-forwarded-for": ip } : {}) },
    body: JSON.stringify(body),
  });
}

/** An alert buying 1 AAPL at 190 under `key`, with sender id `id`. */
function aaplBuy(key: string, id: string) {
  return { key, ticker: "AAPL", action: "buy", quantity: 1, price: 190, id };
}

Deno.test("with WEBHOOK_ALLOWED_IPS=tradingview only TradingView's addresses may post, before any lookup", async () => {
  await using t = await createTestDb("pglite");
  const trader = await insertTrader(t.db);
  await using test = createTestApp({
    db: t.db,
    env: { WEBHOOK_ALLOWED_IPS: "tradingview,10.1.2.3", TRUST_PROXY: "true" },
  });
  const alert = { key: trader.key, ticker: "AAPL", action: "buy", quantity: 1, price: 190 };

  const refused = await post(test.app, alert, "203.0.113.9");
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).error.code, "FORBIDDEN");

  for (const ip of ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7", "10.1.2.3"]) {
    const res = await post(test.app, { ...alert, id: `from-${ip}` }, ip);
    assert.equal(res.status, 202, `${ip} is allowed`);
  }
  const [{ n }] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM signals") as [
    { n: number },
  ];
  assert.equal(n, 5, "the refused request stored nothing");
  assert.equal(test.dispatched.length, 5, "each accepted signal was dispatched to ingest");
});

Deno.test("without an allowlist any address may post", async () => {
  await using t = await createTestDb("pglite");
  const trader = await insertTrader(t.db);
  await using test = createTestApp({ db: t.db });
  const res = await post(test.app, {
    key: trader.key,
    ticker: "AAPL",
    action: "buy",
    quantity: 1,
    price: 1,
  }, "203.0.113.9");
  assert.equal(res.status, 202);
  const event = test.events.find((e) => e.type === "signal.received");
  assert.equal(event?.userId, trader.userId);
});

for (const engine of ENGINES) {
  Deno.test(`concurrent alerts each answer 503 and none is stored or dispatched when their batch cannot commit (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    let down = true;
    // The key lookup answers; the accept's statement finds the database gone.
    const db = new Proxy(t.db, {
      get(target, prop) {
        if (prop === "query") {
          return (text: string, params?: readonly unknown[]) =>
            down && text.includes("INSERT INTO signal_dedup")
              ? Promise.reject(new DbUnavailableError("Cannot reach the database: refused"))
              : target.query(text, params);
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    await using test = createTestApp({ db });
    const alert = (id: string) => aaplBuy(trader.key, id);
    const answers = await Promise.all(["a", "b", "c"].map((id) => post(test.app, alert(id))));
    for (const res of answers) {
      assert.equal(res.status, 503);
      assert.equal((await res.json()).error.code, "SERVICE_UNAVAILABLE");
    }
    const [{ n }] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM signals") as [
      { n: number },
    ];
    assert.equal(n, 0);
    assert.equal(test.dispatched.length, 0);
    down = false;
    const again = await Promise.all(["a", "b", "a"].map((id) => post(test.app, alert(id))));
    assert.deepEqual(again.map((r) => r.status).sort(), [200, 202, 202]);
    assert.equal(test.dispatched.length, 2);
  });
}

for (const engine of ENGINES) {
  Deno.test(`an alert is never accepted on a remembered key or account that changed: a revoked key answers 401, a new symbol map is used (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    await using test = createTestApp({ db: t.db });
    const alert = (id: string) => aaplBuy(trader.key, id);
    assert.equal((await post(test.app, alert("first"))).status, 202); // key and account remembered
    await t.db.query(`UPDATE broker_accounts SET symbol_map = '{"AAPL":"AAPL.X"}' WHERE id = $1`, [
      trader.accountId,
    ]);
    const remapped = await post(test.app, alert("remapped"));
    assert.equal(remapped.status, 202);
    const { signal_id } = await remapped.json();
    const [row] = await t.db.query<{ symbol: string }>("SELECT symbol FROM signals WHERE id = $1", [
      signal_id,
    ]);
    assert.equal(row?.symbol, "AAPL.X");

    await t.db.query("UPDATE webhook_keys SET revoked_at = now() WHERE id = $1", [trader.keyId]);
    const revoked = await post(test.app, alert("revoked"));
    assert.equal(revoked.status, 401);
    assert.equal((await revoked.json()).error.code, "AUTHENTICATION_REQUIRED");
    // Nor is a refused alert journaled under a revoked key.
    const invalid = await post(test.app, { key: trader.key, ticker: "AAPL", action: "hold" });
    assert.equal(invalid.status, 401);
    const [{ n }] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM signals") as [
      { n: number },
    ];
    assert.equal(n, 2);
  });
}
