import assert from "node:assert/strict";
import type { Bar } from "../db/bars.ts";
import { detectTrendlines, evaluateBar, lineValue } from "./trendlines.ts";

const T0 = Date.UTC(2026, 0, 5);
const HOUR = 3_600_000;

/** A seeded generator (mulberry32), so the series are the same on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bar(i: number, o: number, h: number, l: number, c: number): Bar {
  return {
    ts: new Date(T0 + i * HOUR),
    open: o.toFixed(4),
    high: Math.max(h, o, c).toFixed(4),
    low: Math.min(l, o, c).toFixed(4),
    close: c.toFixed(4),
    volume: "100",
  };
}

/** Price oscillating in a rising channel: support 100 + 0.02·i, resistance 110 + 0.02·i. */
function channel(n: number, rand: () => number): Bar[] {
  const bars: Bar[] = [];
  for (let i = 0; i < n; i++) {
    const base = 100 + 0.02 * i;
    const mid = base + 5 + 4.6 * Math.sin((2 * Math.PI * i) / 40);
    const c = mid + (rand() - 0.5) * 0.4;
    const o = mid + (rand() - 0.5) * 0.4;
    // Highs and lows reach the channel at the swings (within ±0.05), never beyond.
    const h = Math.min(base + 10 + (rand() - 0.5) * 0.1, Math.max(o, c) + 0.4);
    const l = Math.max(base - (rand() - 0.5) * 0.1, Math.min(o, c) - 0.4);
    bars.push(bar(i, o, h, l, c));
  }
  return bars;
}

Deno.test("detection recovers a known support and resistance line within tolerance", () => {
  const bars = channel(400, random(1));
  const lines = detectTrendlines(bars, { tolerance: 0.2 });
  for (const [kind, intercept] of [["support", 100], ["resistance", 110]] as const) {
    const best = lines.find((l) => l.kind === kind);
    assert.ok(best, `a ${kind} line`);
    assert.ok(Math.abs(best.slopePerHour - 0.02) < 0.002, `${kind} slope ${best.slopePerHour}`);
    const at0 = lineValue(best, new Date(T0));
    assert.ok(Math.abs(at0 - intercept) < 0.25, `${kind} intercept ${at0}`);
    assert.ok(best.touches >= 10, `${kind} touches ${best.touches}`);
  }
});

Deno.test("detection finds no strong line in random walks", () => {
  // Gaussian random walks (0.5% per bar, tolerance 0.1%): unbounded, so nothing for a line to
  // find but chance alignments of pivots. Over 2,000 bars these reach 3 to 7 touches (measured
  // over 120 seeds: mostly 4, once 7); the channel above gives 10 in 400 bars. The criterion:
  // over 20 walks, no line reaches 8 touches and the typical (median) best line has at most 4.
  const best: number[] = [];
  for (let seed = 1; seed <= 20; seed++) {
    const rand = random(seed);
    const gauss = () => Math.sqrt(-2 * Math.log(rand() || 1e-12)) * Math.cos(2 * Math.PI * rand());
    let price = 100;
    const bars = Array.from({ length: 2_000 }, (_, i) => {
      const o = price;
      price *= Math.exp(0.005 * gauss());
      const h = Math.max(o, price) * (1 + 0.002 * rand());
      return bar(i, o, h, Math.min(o, price) * (1 - 0.002 * rand()), price);
    });
    best.push(Math.max(0, ...detectTrendlines(bars).map((l) => l.touches)));
  }
  assert.ok(Math.max(...best) < 8, `best lines ${best}`);
  assert.ok(best.toSorted((a, b) => a - b)[10]! <= 4, `best lines ${best}`);
});

Deno.test("detection on a real-looking series read back from a generated CSV fixture", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Geometric Brownian motion inside an embedded rising channel (reflecting at its edges).
    const rand = random(42);
    const gauss = () => Math.sqrt(-2 * Math.log(rand() || 1e-12)) * Math.cos(2 * Math.PI * rand());
    const rows = ["ts,open,high,low,close,volume"];
    let price = 100;
    for (let i = 0; i < 1_500; i++) {
      const lower = 95 * Math.exp(0.0002 * i);
      const upper = 105 * Math.exp(0.0002 * i);
      const open = price;
      price = price * Math.exp(0.004 * gauss());
      if (price > upper) price = upper - (price - upper);
      if (price < lower) price = lower + (lower - price);
      const high = Math.min(upper, Math.max(open, price) * (1 + 0.001 * rand()));
      const low = Math.max(lower, Math.min(open, price) * (1 - 0.001 * rand()));
      rows.push(
        [new Date(T0 + i * HOUR).toISOString(), open, high, low, price, 1000]
          .map((v) => typeof v === "number" ? v.toFixed(4) : v).join(","),
      );
    }
    const file = `${dir}/series.csv`;
    await Deno.writeTextFile(file, rows.join("\n") + "\n");
    const bars: Bar[] = (await Deno.readTextFile(file)).trim().split("\n").slice(1).map((line) => {
      const [ts, open, high, low, close, volume] = line.split(",") as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      return { ts: new Date(ts), open, high, low, close, volume };
    });
    assert.equal(bars.length, 1_500);
    const lines = detectTrendlines(bars, { minTouches: 3 });
    assert.ok(lines.length > 0, "lines found along the channel");
    for (const line of lines) {
      // Every line found is unbroken: no close beyond it from its first anchor to the end.
      for (const b of bars) {
        if (b.ts < line.t1) continue;
        const v = lineValue(line, b.ts);
        const c = Number(b.close);
        const tol = c * 0.001;
        if (line.kind === "resistance") assert.ok(c <= v + tol, "no close above resistance");
        else assert.ok(c >= v - tol, "no close below support");
      }
    }
    const edges = lines.filter((l) => {
      const end = new Date(T0 + 1_499 * HOUR);
      const edge = l.kind === "support"
        ? 95 * Math.exp(0.0002 * 1_499)
        : 105 * Math.exp(0.0002 * 1_499);
      return Math.abs(lineValue(l, end) - edge) / edge < 0.01;
    });
    assert.ok(edges.length > 0, "a line on a channel edge, within 1% at the last bar");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("alerts: touch and break on an active line, retest after a break", () => {
  const line = { kind: "resistance" as const, t1: new Date(T0), p1: 100, slopePerHour: 0.1 };
  // At hour 10 the line is at 101; tolerance 0.1.
  const active = { ...line, status: "active" as const };
  const broken = { ...line, status: "broken" as const };
  assert.equal(evaluateBar(active, bar(10, 100, 100.5, 99.5, 100), 0.1), null);
  assert.equal(evaluateBar(active, bar(10, 100, 100.95, 99.5, 100.5), 0.1), "touch");
  assert.equal(evaluateBar(active, bar(10, 100, 101.5, 99.5, 101.3), 0.1), "break");
  assert.equal(evaluateBar(broken, bar(10, 102, 102.5, 101.05, 101.5), 0.1), "retest");
  assert.equal(evaluateBar(broken, bar(10, 102, 102.5, 101.8, 102), 0.1), null);
  const support = { ...line, kind: "support" as const, status: "active" as const };
  assert.equal(evaluateBar(support, bar(10, 102, 102.5, 101.05, 101.5), 0.1), "touch");
  assert.equal(evaluateBar(support, bar(10, 101, 101.2, 100.5, 100.7), 0.1), "break");
});
