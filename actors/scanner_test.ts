import assert from "node:assert/strict";
import { type Bar, upsertBars } from "../db/bars.ts";
import { addWatch, insertTrendline, listTrendlines, trendlineEvents } from "../db/trendlines.ts";
import { FakeClock } from "../lib/clock.ts";
import { EventBus, type PipelineEvent } from "../lib/events.ts";
import { memoryLogger } from "../lib/log.ts";
import { nextTicks, SCAN_SCHEDULES } from "../lib/schedule.ts";
import { createTestDb } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { createActor } from "./actor.ts";
import { scannerBehavior, type ScannerCommand, type ScanSummary } from "./scanner.ts";

const T0 = Date.UTC(2026, 0, 5);
const HOUR = 3_600_000;

/** A rising channel: support 100 + 0.02·i, resistance 110 + 0.02·i, swings every 40 bars. */
function channelBar(i: number): Bar {
  const base = 100 + 0.02 * i;
  const mid = base + 5 + 4.6 * Math.sin((2 * Math.PI * i) / 40);
  const wiggle = ((i * 7919) % 13) / 13 - 0.5;
  const c = mid + wiggle * 0.3;
  const o = mid - wiggle * 0.3;
  const h = Math.min(base + 10, Math.max(o, c) + 0.4);
  const l = Math.max(base, Math.min(o, c) - 0.4);
  return {
    ts: new Date(T0 + i * HOUR),
    open: o.toFixed(4),
    high: Math.max(h, o, c).toFixed(4),
    low: Math.min(l, o, c).toFixed(4),
    close: c.toFixed(4),
    volume: "10",
  };
}

function bar(i: number, o: number, h: number, l: number, c: number): Bar {
  return {
    ts: new Date(T0 + i * HOUR),
    open: `${o}`,
    high: `${h}`,
    low: `${l}`,
    close: `${c}`,
    volume: "1",
  };
}

Deno.test("two scanners on one PostgreSQL database scan each tick once; lines persist and alerts follow new bars", async () => {
  await using t = await createTestDb("postgres");
  const ann = await insertTrader(t.db);
  const key = { userId: ann.userId, symbol: "AAPL", timeframe: "1h" as const };
  await upsertBars(
    t.db,
    { ...key, source: "csv" },
    Array.from({ length: 400 }, (_, i) => channelBar(i)),
  );
  assert.equal(await addWatch(t.db, key), true);
  assert.equal(await addWatch(t.db, key), false, "watched once");

  const clock = new FakeClock(T0 + 400 * HOUR);
  const { log } = memoryLogger("debug");
  const bus = new EventBus(log);
  const events: PipelineEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const scanners = ["a", "b"].map((id) =>
    createActor<unknown, ScannerCommand>(
      `scanner-${id}`,
      scannerBehavior({ db: t.db, clock, bus, instanceId: `instance-${id}` }) as never,
      { log, clock },
    )
  );
  const children = scanners.map((s) => s.run());
  try {
    // An accelerated clock: three hours of 1h ticks, each delivered to both instances.
    const from = new Date(clock.now());
    await clock.advance(3 * HOUR);
    const ticks = nextTicks(SCAN_SCHEDULES["1h"], from, new Date(clock.now()));
    assert.equal(ticks.length, 3);
    for (const at of ticks) {
      for (const s of scanners) await s.ref.tell({ type: "tick", timeframe: "1h", at });
    }
    const statuses = await Promise.all(
      scanners.map((s) =>
        s.ref.ask<{ ticksScanned: number; ticksSkipped: number }>(
          (reply) => ({ type: "status", reply }),
          { timeoutMs: 10_000 },
        )
      ),
    );
    assert.equal(
      statuses[0]!.ticksScanned + statuses[1]!.ticksScanned,
      3,
      "each tick scanned once",
    );
    assert.equal(statuses[0]!.ticksSkipped + statuses[1]!.ticksSkipped, 3);
    const completes = events.filter((e) => e.type === "scan.complete");
    assert.equal(completes.length, 3);
    assert.deepEqual(
      completes.map((e) => e.data.tick_at).sort(),
      ticks.map((at) => at.toISOString()),
    );

    const lines = await listTrendlines(t.db, ann.userId, { ...key, status: "active" });
    const kinds = new Set(lines.map((l) => l.kind));
    assert.deepEqual([...kinds].sort(), ["resistance", "support"]);
    const news = events.filter((e) => e.type === "trendline.new");
    assert.equal(news.length, lines.length, "each line announced once over three ticks");
    for (const line of lines) {
      assert.deepEqual((await trendlineEvents(t.db, line.id)).map((e) => e.kind), ["created"]);
    }
    assert.equal(
      (await listTrendlines(t.db, (await insertTrader(t.db)).userId)).length,
      0,
      "another trader sees none",
    );

    // A new bar closes far above every resistance line: a break, then a retest from above.
    const resistance = lines.filter((l) => l.kind === "resistance");
    const top = Math.max(...resistance.map((l) => l.p1 + l.slopePerHour * 402));
    await upsertBars(t.db, { ...key, source: "webhook" }, [
      bar(401, top - 1, top + 3, top - 1, top + 2.5),
    ]);
    await scanners[0]!.ref.tell({ type: "bar", ...key });
    await scanners[0]!.ref.ask<ScanSummary>(
      (reply) => ({ type: "scan", timeframe: "1h", userId: ann.userId, reply }),
      {
        timeoutMs: 10_000,
      },
    );
    const breaks = events.filter((e) => e.type === "trendline.alert" && e.data.alert === "break");
    assert.ok(breaks.length >= resistance.length, "every resistance line broken");
    const broken = await listTrendlines(t.db, ann.userId, { ...key, status: "broken" });
    assert.ok(broken.length >= resistance.length);
    const line = broken.find((l) => l.kind === "resistance")!;
    const v = line.p1 + line.slopePerHour * (402 * HOUR + T0 - line.t1.getTime()) / HOUR;
    await upsertBars(t.db, { ...key, source: "webhook" }, [
      bar(402, v + 2, v + 2.5, v + 0.05, v + 1),
    ]);
    await scanners[0]!.ref.ask<ScanSummary>(
      (reply) => ({ type: "scan", timeframe: "1h", userId: ann.userId, symbol: "AAPL", reply }),
      { timeoutMs: 10_000 },
    );
    const history = (await trendlineEvents(t.db, line.id)).map((e) => e.kind);
    assert.deepEqual(history, ["created", "broken", "retested"]);
    assert.ok(events.some((e) => e.type === "trendline.alert" && e.data.alert === "retest"));
  } finally {
    await Promise.all(children.map((c) => c.stop(5_000)));
  }
});

Deno.test("the scanner alerts a touch when price comes to a line, not on every bar it stays", async () => {
  await using t = await createTestDb("pglite");
  const ann = await insertTrader(t.db);
  const key = { userId: ann.userId, symbol: "MSFT", timeframe: "4h" as const };
  // Support flat at 100 (tolerance 0.1% of the close, about 0.1), seen up to hour 9.
  const line = await insertTrendline(t.db, { id: crypto.randomUUID(), ...key }, {
    kind: "support",
    t1: new Date(T0),
    p1: 100,
    t2: new Date(T0 + 5 * HOUR),
    p2: 100,
    slopePerHour: 0,
    touches: 3,
    touchedAt: [],
    score: 30,
  }, { at: new Date(T0), lastBarTs: new Date(T0 + 9 * HOUR) });
  await upsertBars(t.db, { ...key, source: "csv" }, [
    bar(9, 101, 101.5, 100.5, 101), // seen already: away from the line
    bar(10, 101, 101.2, 100.05, 100.6), // touch
    bar(11, 100.6, 100.9, 100.02, 100.5), // still there: no second alert
    bar(12, 100.5, 102, 100.5, 101.8), // away
    bar(13, 101.8, 101.9, 100.08, 100.4), // touch again
  ]);
  const clock = new FakeClock(T0 + 14 * HOUR);
  const { log } = memoryLogger("debug");
  const bus = new EventBus(log);
  const events: PipelineEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const scanner = createActor(
    "scanner",
    scannerBehavior({ db: t.db, clock, bus, instanceId: "solo" }),
    { log, clock },
  );
  const child = scanner.run();
  try {
    await scanner.ref.tell({ type: "bar", ...key });
    await scanner.ref.ask((reply) => ({ type: "status", reply }), { timeoutMs: 10_000 });
    const touches = events.filter((e) => e.type === "trendline.alert");
    assert.deepEqual(touches.map((e) => [e.data.alert, e.data.bar_ts]), [
      ["touch", new Date(T0 + 10 * HOUR).toISOString()],
      ["touch", new Date(T0 + 13 * HOUR).toISOString()],
    ]);
    const history = await trendlineEvents(t.db, line!.id);
    assert.deepEqual(history.map((e) => e.kind), ["created", "touched", "touched"]);
    // Told again with no new bar: nothing more.
    await scanner.ref.tell({ type: "bar", ...key });
    await scanner.ref.ask((reply) => ({ type: "status", reply }), { timeoutMs: 10_000 });
    assert.equal(events.filter((e) => e.type === "trendline.alert").length, 2);
  } finally {
    await child.stop(5_000);
  }
});
