/** A bar posted to the bar-close webhook reaches the scanner at once and raises its alert. */
import assert from "node:assert/strict";
import { insertTrendline } from "../db/trendlines.ts";
import type { PipelineEvent } from "../lib/events.ts";
import { insertTrader } from "./_fixtures.ts";
import { eventually, startInProcess } from "./_pipeline.ts";

const HOUR = 3_600_000;

Deno.test("a bar from the webhook that closes through a support line raises a break alert", async () => {
  await using server = await startInProcess({});
  const { db, bus } = server.runtime;
  const trader = await insertTrader(db);
  const t0 = Date.UTC(2026, 0, 5, 8);
  await insertTrendline(db, {
    id: crypto.randomUUID(),
    userId: trader.userId,
    symbol: "AAPL",
    timeframe: "1h",
  }, {
    kind: "support",
    t1: new Date(t0),
    p1: 100,
    t2: new Date(t0 + 5 * HOUR),
    p2: 100,
    slopePerHour: 0,
    touches: 3,
    touchedAt: [],
    score: 30,
  }, { at: new Date(t0), lastBarTs: new Date(t0 + 8 * HOUR) });
  const alerts: PipelineEvent[] = [];
  const unsubscribe = bus.subscribe((e) => {
    if (e.type === "trendline.alert") alerts.push(e);
  });
  try {
    const res = await fetch(`${server.url}/api/v1/webhooks/bars`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        key: trader.key,
        ticker: "NASDAQ:AAPL",
        interval: "60",
        time: new Date(t0 + 9 * HOUR).toISOString(),
        open: 100.4,
        high: 100.5,
        low: 97.9,
        close: 98.1,
        volume: 12345,
      }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    await res.body?.cancel();
    await eventually("the break alert", () => Promise.resolve(alerts.length > 0), 10_000);
    assert.equal(alerts[0]!.userId, trader.userId);
    assert.equal(alerts[0]!.data.alert, "break");
    assert.equal(alerts[0]!.data.symbol, "AAPL");
  } finally {
    unsubscribe();
  }
});
