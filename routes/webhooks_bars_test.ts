import assert from "node:assert/strict";
import { readBars } from "../db/bars.ts";
import { createTestApp } from "../tests/_app.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";

function post(
  app: ReturnType<typeof createTestApp>["app"],
  body: unknown,
  contentType = "application/json",
) {
  return app.request("/api/v1/webhooks/bars", {
    method: "POST",
    headers: { "content-type": contentType },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const BAR = {
  ticker: "NASDAQ:AAPL",
  interval: "60",
  open: "190.10",
  high: 191.5,
  low: "189.75",
  close: "191.00",
  volume: "120345",
  time: "2026-01-05T14:00:00Z",
};

for (const engine of ENGINES) {
  Deno.test(`[${engine}] the bar webhook stores a TradingView bar once, however often it is sent`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    await using test = createTestApp({ db: t.db });

    // TradingView sends text/plain unless the message is exact JSON.
    const first = await post(test.app, JSON.stringify({ key: trader.key, ...BAR }), "text/plain");
    assert.equal(first.status, 200);
    assert.deepEqual(await first.json(), {
      stored: true,
      symbol: "AAPL",
      timeframe: "1h",
      ts: "2026-01-05T14:00:00.000Z",
    });
    const again = await post(test.app, { key: trader.key, ...BAR, close: "191.25" });
    assert.equal(again.status, 200);

    const bars = await readBars(t.db, { userId: trader.userId, symbol: "AAPL", timeframe: "1h" });
    assert.equal(bars.length, 1, "the same bar twice is one row");
    assert.equal(Number(bars[0]!.close), 191.25, "the last one wins");
    assert.equal(Number(bars[0]!.high), 191.5);
    assert.equal(Number(bars[0]!.volume), 120345);
    const [price] = await t.db.query<{ price: string }>(
      "SELECT price::text AS price FROM last_prices WHERE symbol = 'AAPL'",
    );
    assert.equal(Number(price?.price), 191.25, "the close is the symbol's last price");

    // An older bar, replayed late, does not move the last price back.
    const older = await post(test.app, {
      key: trader.key,
      ...BAR,
      close: "190.5",
      time: Date.parse("2026-01-05T12:00:00Z"),
    });
    assert.equal(older.status, 200);
    assert.equal((await older.json()).ts, "2026-01-05T12:00:00.000Z", "epoch ms is read");
    const [still] = await t.db.query<{ price: string }>(
      "SELECT price::text AS price FROM last_prices WHERE symbol = 'AAPL'",
    );
    assert.equal(Number(still?.price), 191.25);
  });
}

Deno.test("the bar webhook maps TradingView's intervals to timeframes and refuses others", async () => {
  await using t = await createTestDb("pglite");
  const trader = await insertTrader(t.db);
  await using test = createTestApp({ db: t.db });
  const cases: [string, string][] = [
    ["1", "1m"],
    ["5", "5m"],
    ["15", "15m"],
    ["30", "30m"],
    ["60", "1h"],
    ["120", "2h"],
    ["240", "4h"],
    ["D", "1d"],
    ["1D", "1d"],
    ["W", "1w"],
  ];
  for (const [interval, timeframe] of cases) {
    const res = await post(test.app, { key: trader.key, ...BAR, interval });
    assert.equal(res.status, 200, interval);
    assert.equal((await res.json()).timeframe, timeframe, interval);
  }
  const ours = await post(test.app, {
    key: trader.key,
    ...BAR,
    interval: undefined,
    timeframe: "4h",
  });
  assert.equal((await ours.json()).timeframe, "4h");

  const bad = await post(test.app, { key: trader.key, ...BAR, interval: "3" });
  assert.equal(bad.status, 400);
  const body = await bad.json();
  assert.equal(body.error.code, "VALIDATION_ERROR");
  assert.deepEqual(body.error.details.map((d: { field: string }) => d.field), ["interval"]);
  const badTf = await post(test.app, {
    key: trader.key,
    ...BAR,
    interval: undefined,
    timeframe: "3h",
  });
  assert.equal(
    (await badTf.json()).error.details[0].field,
    "timeframe",
    "the field named is the one sent",
  );
});

Deno.test("the bar webhook refuses inconsistent prices, unfilled placeholders and bad times with 400", async () => {
  await using t = await createTestDb("pglite");
  const trader = await insertTrader(t.db);
  await using test = createTestApp({ db: t.db });
  async function fields(body: Record<string, unknown>): Promise<string[]> {
    const res = await post(test.app, { key: trader.key, ...BAR, ...body });
    assert.equal(res.status, 400, JSON.stringify(body));
    const json = await res.json();
    assert.equal(json.error.code, "VALIDATION_ERROR");
    return json.error.details.map((d: { field: string }) => d.field);
  }
  assert.deepEqual(await fields({ high: "190.00" }), ["high"], "high below the close");
  assert.deepEqual(await fields({ low: "190.50" }), ["low"], "low above the open");
  assert.deepEqual(await fields({ close: "{{close}}", volume: "{{volume}}" }), ["close", "volume"]);
  assert.deepEqual(await fields({ time: "2026-01-05 14:00" }), ["time"], "no zone");
  assert.deepEqual(await fields({ time: "yesterday" }), ["time"]);
  assert.deepEqual(await fields({ open: "-1" }), ["open"]);
  assert.deepEqual(await fields({ open: "abc", ticker: "" }), ["ticker", "open"]);
  const [{ n }] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM bars") as [
    { n: number },
  ];
  assert.equal(n, 0, "nothing refused was stored");
});

Deno.test("the bar webhook has the signal webhook's locks: key, allowlist and per-key limit", async () => {
  await using t = await createTestDb("pglite");
  const trader = await insertTrader(t.db);
  await using test = createTestApp({
    db: t.db,
    env: {
      WEBHOOK_RATE_LIMIT_PER_MINUTE: "2",
      WEBHOOK_ALLOWED_IPS: "10.1.2.3",
      TRUST_PROXY: "true",
    },
  });
  const from = (ip: string, body: unknown) =>
    test.app.request("/api/v1/webhooks/bars", {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": ip },
      body: JSON.stringify(body),
    });
  assert.equal((await from("203.0.113.9", { key: trader.key, ...BAR })).status, 403);
  const unknown = await from("10.1.2.3", { key: `whk_${"a".repeat(43)}`, ...BAR });
  assert.equal(unknown.status, 401);
  assert.equal((await unknown.json()).error.code, "AUTHENTICATION_REQUIRED");
  assert.equal((await from("10.1.2.3", { ...BAR })).status, 401);
  assert.equal((await from("10.1.2.3", { key: trader.key, ...BAR })).status, 200);
  assert.equal((await from("10.1.2.3", { key: trader.key, ...BAR })).status, 200);
  const limited = await from("10.1.2.3", { key: trader.key, ...BAR });
  assert.equal(limited.status, 429);
  assert.ok(limited.headers.get("retry-after"));
});
