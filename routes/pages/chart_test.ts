import assert from "node:assert/strict";
import type { Queryable } from "../../db/client.ts";
import { type Bar, upsertBars } from "../../db/bars.ts";
import { insertTrendline } from "../../db/trendlines.ts";
import { uuidv7 } from "../../lib/ids.ts";
import { createTestApp } from "../../tests/_app.ts";
import { chartMarkers } from "./chart.tsx";
import { createTestDb } from "../../tests/_db.ts";
import { accessTokenFor, insertTrader } from "../../tests/_fixtures.ts";

const HOUR = 3_600_000;
const START = Date.UTC(2026, 0, 5, 14);

type TestApp = ReturnType<typeof createTestApp>;

/** A GET of `path` with `userId`'s session cookie. */
async function page(test: TestApp, db: Queryable, userId: string, path: string) {
  const { token } = await accessTokenFor(db, { id: userId, role: "trader" }, {
    secret: test.config.jwtSecret,
    now: test.clock.now(),
  });
  return test.app.request(path, { headers: { Cookie: `te_access=${token}` } });
}

/** The JSON props of the first island named `name` in `html`. */
function islandProps(html: string, name: string): Record<string, unknown> {
  const id = html.match(new RegExp(`data-island="${name}" data-island-id="([^"]+)"`))?.[1];
  assert.ok(id, `island ${name} is on the page`);
  const json = html.match(new RegExp(`data-island-props="${id}">([^<]*)</script>`))?.[1];
  return JSON.parse(json!);
}

/** 20 hourly AAPL bars rising by 1 from 100, a support line, and a buy and a sell fill. */
async function seed(db: Queryable, userId: string, accountId: string) {
  await upsertBars(
    db,
    { userId, symbol: "AAPL", timeframe: "1h", source: "csv" },
    Array.from({ length: 20 }, (_, i) => ({
      ts: new Date(START + i * HOUR),
      open: String(100 + i),
      high: String(101.5 + i),
      low: String(99.5 + i),
      close: String(101 + i),
      volume: "1000",
    })),
  );
  await insertTrendline(
    db,
    { id: uuidv7(), userId, symbol: "AAPL", timeframe: "1h" },
    {
      kind: "support",
      t1: new Date(START + 2 * HOUR),
      p1: 101.5,
      t2: new Date(START + 8 * HOUR),
      p2: 107.5,
      slopePerHour: 1,
      touches: 3,
      touchedAt: [],
      score: 1,
    },
    { at: new Date(START + 20 * HOUR), lastBarTs: new Date(START + 19 * HOUR) },
  );
  for (const [side, hour, price] of [["buy", 3.5, "103.25"], ["sell", 12.2, "113"]] as const) {
    const orderId = uuidv7();
    await db.query(
      `INSERT INTO orders (id, user_id, account_id, client_order_id, symbol, side, quantity,
         order_type, time_in_force, status)
       VALUES ($1, $2, $3, $4, 'AAPL', $5, 10, 'market', 'day', 'filled')`,
      [orderId, userId, accountId, `c-${orderId}`, side],
    );
    await db.query(
      `INSERT INTO fills (id, order_id, user_id, account_id, broker_fill_id, symbol, side, quantity,
         price, filled_at)
       VALUES ($1, $2, $3, $4, 'f1', 'AAPL', $5, 10, $6, $7)`,
      [uuidv7(), orderId, userId, accountId, side, price, new Date(START + hour * HOUR)],
    );
  }
}

Deno.test("chart page shows the trader's bars, active trendlines and fills, and none of another's", async () => {
  await using tdb = await createTestDb("pglite");
  await using test = createTestApp({ db: tdb.db });
  const ann = await insertTrader(tdb.db);
  const bob = await insertTrader(tdb.db);
  await seed(tdb.db, ann.userId, ann.accountId);

  const res = await page(test, tdb.db, ann.userId, "/chart?symbol=AAPL&timeframe=1h");
  assert.equal(res.status, 200);
  const html = await res.text();
  const props = islandProps(html, "Chart") as {
    bars: { time: number; close: number }[];
    lines: { kind: string; from: { time: number; value: number }; to: { value: number } }[];
    markers: { time: number; side: string; text: string }[];
  };
  assert.equal(props.bars.length, 20);
  assert.deepEqual(props.bars[0], {
    time: START / 1000,
    open: 100,
    high: 101.5,
    low: 99.5,
    close: 101,
  });
  assert.equal(props.lines.length, 1);
  assert.equal(props.lines[0]!.kind, "support");
  assert.deepEqual(props.lines[0]!.from, { time: (START + 2 * HOUR) / 1000, value: 101.5 });
  assert.equal(props.lines[0]!.to.value, 118.5, "extended to the last bar");
  assert.deepEqual(props.markers, [
    { time: (START + 3 * HOUR) / 1000, side: "buy", text: "B 10" },
    { time: (START + 12 * HOUR) / 1000, side: "sell", text: "S 10" },
  ]);
  // The prices are in the fills table under the chart, newest first, each linking to its order.
  const rows = [...html.matchAll(/<tr data-fill="([^"]+)">(.*?)<\/tr>/g)];
  assert.equal(rows.length, 2);
  assert.match(rows[0]![2]!, /sell.*>10<.*>113</);
  assert.match(rows[1]![2]!, /buy.*>10<.*>103\.25</);
  assert.match(rows[0]![2]!, new RegExp(`href="/orders/${rows[0]![1]}"`));
  assert.match(html, /Last close <strong>120<\/strong>/);
  assert.match(html, /data-trendlines="1"/);
  assert.match(html, /data-trades="2"/);
  // Without a query the page picks the trader's first series.
  const first = await (await page(test, tdb.db, ann.userId, "/chart")).text();
  assert.equal((islandProps(first, "Chart").bars as unknown[]).length, 20);

  // Another trader sees an empty state with how to get bars, not Ann's chart.
  const other = await page(test, tdb.db, bob.userId, "/chart?symbol=AAPL&timeframe=1h");
  assert.equal(other.status, 200);
  const otherHtml = await other.text();
  assert.doesNotMatch(otherHtml, /data-island="Chart"/);
  assert.match(otherHtml, /No 1h bars of AAPL yet/);
  assert.match(otherHtml, /deno task bars:import/);
  assert.match(otherHtml, /deno task bars:fetch/);
  assert.match(otherHtml, /\/api\/v1\/webhooks\/bars/);
  const none = await (await page(test, tdb.db, bob.userId, "/chart")).text();
  assert.match(none, /No bars yet/);
});

Deno.test("chart page answers a bad symbol or timeframe with 400 and a readable message", async () => {
  await using tdb = await createTestDb("pglite");
  await using test = createTestApp({ db: tdb.db });
  const ann = await insertTrader(tdb.db);

  const badTf = await page(test, tdb.db, ann.userId, "/chart?symbol=AAPL&timeframe=3h");
  assert.equal(badTf.status, 400);
  assert.match(await badTf.text(), /timeframe &quot;3h&quot; is not one of 1m, 5m/);

  const badSymbol = await page(test, tdb.db, ann.userId, "/chart?symbol=%3Cscript%3E");
  assert.equal(badSymbol.status, 400);
  const html = await badSymbol.text();
  assert.match(html, /symbol &quot;&lt;script>&quot; is not a symbol/);
  assert.doesNotMatch(html, /<script>/);

  const anonymous = await test.app.request("/chart");
  assert.equal(anonymous.status, 303);
  assert.equal(anonymous.headers.get("location"), "/login?next=%2Fchart");
});

Deno.test("fills on one bar and side make one marker with their summed quantity", () => {
  const bars: Bar[] = [0, 1, 2].map((i) => ({
    ts: new Date(START + i * HOUR),
    open: "1",
    high: "1",
    low: "1",
    close: "1",
    volume: "0",
  }));
  const fill = (side: "buy" | "sell", hour: number, quantity: string) => ({
    order_id: uuidv7(),
    side,
    quantity,
    price: "1",
    filled_at: new Date(START + hour * HOUR),
    account: "paper",
  });
  const markers = chartMarkers([
    fill("buy", -1, "5"), // before the first bar: left out
    fill("buy", 0.2, "0.1"),
    fill("buy", 0.7, "0.2"),
    fill("sell", 0.9, "3"),
    fill("sell", 2.5, "7"),
  ], bars);
  assert.deepEqual(markers, [
    { time: START / 1000, side: "buy", text: "B 0.3 ×2" },
    { time: START / 1000, side: "sell", text: "S 3" },
    { time: (START + 2 * HOUR) / 1000, side: "sell", text: "S 7" },
  ]);
});
