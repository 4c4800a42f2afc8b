import assert from "node:assert/strict";
import { insertTrendline } from "../db/trendlines.ts";
import { apiAs, createTestApp } from "../tests/_app.ts";
import { createTestDb } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import type { ErrorBody } from "./_errors.ts";

Deno.test("watchlists, scan settings and trendlines are per user and validated", async () => {
  await using t = await createTestDb("pglite");
  await using test = createTestApp({ db: t.db });
  const ann = await insertTrader(t.db);
  const bob = await insertTrader(t.db);
  const as = (userId: string) => apiAs(test, userId);

  const annApi = as(ann.userId);
  const bobApi = as(bob.userId);

  let res = await annApi("POST", "/api/v1/watchlists", { symbol: "AAPL", timeframe: "1h" });
  assert.equal(res.status, 201);
  assert.equal(
    (await annApi("POST", "/api/v1/watchlists", { symbol: "AAPL", timeframe: "1h" })).status,
    200,
  );
  res = await annApi("POST", "/api/v1/watchlists", { symbol: "", timeframe: "5m" });
  assert.equal(res.status, 400);
  const err = await res.json() as ErrorBody;
  const fields = err.error.details.map((d) => d.field).sort();
  assert.deepEqual(fields, ["symbol", "timeframe"], "names both fields; 5m is below 1H");
  res = await annApi("GET", "/api/v1/watchlists");
  const list = await res.json() as { data: { symbol: string; timeframe: string }[] };
  assert.deepEqual(list.data.map((e) => [e.symbol, e.timeframe]), [["AAPL", "1h"]]);
  assert.deepEqual((await (await bobApi("GET", "/api/v1/watchlists")).json()).data, []);
  assert.equal((await bobApi("DELETE", "/api/v1/watchlists?symbol=AAPL&timeframe=1h")).status, 404);
  assert.equal((await annApi("DELETE", "/api/v1/watchlists?symbol=AAPL&timeframe=1h")).status, 204);

  res = await annApi("GET", "/api/v1/scan-settings");
  assert.deepEqual(await res.json(), {
    pivot_window: 5,
    tolerance_mode: "percent",
    tolerance: 0.1,
    min_touches: 3,
    max_lines: 5,
  });
  res = await annApi("PUT", "/api/v1/scan-settings", {
    min_touches: 4,
    tolerance_mode: "atr",
    tolerance: 0.3,
  });
  assert.equal(res.status, 200);
  assert.equal((await (await annApi("GET", "/api/v1/scan-settings")).json()).min_touches, 4);
  assert.equal((await (await bobApi("GET", "/api/v1/scan-settings")).json()).min_touches, 3);
  res = await annApi("PUT", "/api/v1/scan-settings", { min_touches: 1, colour: "red" });
  assert.equal(res.status, 400);

  const t1 = new Date(Date.UTC(2026, 0, 5));
  await insertTrendline(t.db, {
    id: crypto.randomUUID(),
    userId: ann.userId,
    symbol: "AAPL",
    timeframe: "1h",
  }, {
    kind: "support",
    t1,
    p1: 100,
    t2: new Date(t1.getTime() + 40 * 3_600_000),
    p2: 100.8,
    slopePerHour: 0.02,
    touches: 3,
    touchedAt: [],
    score: 40,
  }, { at: t1, lastBarTs: t1 });
  res = await annApi("GET", "/api/v1/trendlines?symbol=AAPL&timeframe=1h&status=active");
  const lines = (await res.json()).data as { kind: string; p1: number; touches: number }[];
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.kind, "support");
  assert.equal(lines[0]!.p1, 100);
  assert.deepEqual((await (await bobApi("GET", "/api/v1/trendlines")).json()).data, []);
  assert.equal((await annApi("GET", "/api/v1/trendlines?status=gone")).status, 400);
});
