import assert from "node:assert/strict";
import { type Bar, readBars, upsertBars } from "../db/bars.ts";
import { createTestDb } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { type AlpacaBarJson, startFakeAlpacaData } from "../tests/fakes/alpaca_data.ts";
import { AlpacaDataError, createAlpacaData } from "./alpaca_data.ts";

const KEYS = { keyId: "PKTEST", secretKey: "secret-value-123" };

function days(n: number): AlpacaBarJson[] {
  return Array.from({ length: n }, (_, i) => ({
    t: new Date(Date.UTC(2026, 0, 1 + i, 5)).toISOString().replace(".000Z", "Z"),
    o: 100 + i,
    h: 101.25 + i,
    l: 99.5 + i,
    c: 100.75 + i,
    v: 1000 + i,
    n: 10,
    vw: 100.5 + i,
  }));
}

async function collect(gen: AsyncGenerator<Bar[]>): Promise<Bar[][]> {
  const pages: Bar[][] = [];
  for await (const page of gen) pages.push(page);
  return pages;
}

Deno.test("the SDK against the fake data API follows every page and the bars upsert idempotently", async () => {
  await using data = startFakeAlpacaData({ ...KEYS, pageSize: 2 });
  data.setBars("AAPL", "1Day", days(5));
  data.faults.push({ status: 429 }); // retried by the SDK, honouring Retry-After
  const client = createAlpacaData({ ...KEYS, baseUrl: data.url, retryDelayMs: 1 });
  const request = { symbol: "AAPL", timeframe: "1d" as const, from: new Date("2026-01-01") };

  const pages = await collect(client.bars(request));
  assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
  const bars = pages.flat();
  assert.equal(bars[0]!.ts.toISOString(), "2026-01-01T05:00:00.000Z");
  assert.deepEqual(
    { open: bars[4]!.open, high: bars[4]!.high, low: bars[4]!.low, volume: bars[4]!.volume },
    { open: "104", high: "105.25", low: "103.5", volume: "1004" },
  );
  const first = data.requests.find((u) => u.searchParams.get("page_token") === null)!;
  assert.equal(first.pathname, "/v2/stocks/AAPL/bars");
  assert.equal(first.searchParams.get("timeframe"), "1Day");
  assert.equal(first.searchParams.get("start"), "2026-01-01T00:00:00.000Z");
  assert.equal(data.requests.length, 4, "one 429, then three pages");

  await using t = await createTestDb("pglite");
  const trader = await insertTrader(t.db);
  const key = { userId: trader.userId, symbol: "AAPL", timeframe: "1d" as const };
  for (let round = 0; round < 2; round++) {
    for await (const page of client.bars(request)) {
      await upsertBars(t.db, { ...key, source: "alpaca" }, page);
    }
  }
  const stored = await readBars(t.db, key);
  assert.equal(stored.length, 5, "fetched twice, stored once");
  assert.equal(Number(stored[2]!.close), 102.75);
});

Deno.test("alpaca data: refused keys are a clear error, and so is a 5xx that outlasts the retries", async () => {
  await using data = startFakeAlpacaData({ ...KEYS, pageSize: 2 });
  data.setBars("AAPL", "1Hour", days(1));
  const request = { symbol: "AAPL", timeframe: "1h" as const, from: new Date("2026-01-01") };

  const wrong = createAlpacaData({ keyId: "PKWRONG", secretKey: "nope", baseUrl: data.url });
  await assert.rejects(collect(wrong.bars(request)), (error: unknown) => {
    assert.ok(error instanceof AlpacaDataError);
    assert.equal(error.status, 403);
    assert.match(
      error.message,
      /^Cannot fetch 1h bars of "AAPL" from Alpaca: the API keys were refused \(403\)/,
    );
    return true;
  });

  data.faults.push({ status: 503, times: 3 });
  const client = createAlpacaData({ ...KEYS, baseUrl: data.url, retryDelayMs: 1 });
  await assert.rejects(collect(client.bars(request)), (error: unknown) => {
    assert.ok(error instanceof AlpacaDataError);
    assert.equal(error.status, 503);
    assert.match(error.message, /Alpaca is unavailable \(503\) after retries/);
    assert.ok(!error.message.includes(KEYS.secretKey));
    return true;
  });
});
