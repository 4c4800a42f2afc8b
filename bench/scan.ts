/**
 * What a scan costs: trendline detection of one symbol at 500, 5,000 and 50,000 bars, beside
 * the time to read those bars from PostgreSQL in the same run (the baseline). Targets:
 * detection costs no more than the read at 5,000 bars, and grows no worse than n·log n (the
 * growth exponent between sizes, log(t₂/t₁)/log(n₂/n₁), against that of n·log n, with 0.15 of
 * slack for a shared machine's noise).
 *
 *     deno run -A bench/scan.ts
 */
import { type Bar, readBars, upsertBars } from "../db/bars.ts";
import { detectTrendlines } from "../lib/trendlines.ts";
import { createTestDb } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { median, ms, ratio, writeLine, writeTable } from "./_report.ts";

const SIZES = [500, 5_000, 50_000] as const;
const REPS = 7;
const SLACK = 0.15;

/** A geometric random walk inside a slowly rising channel, hourly, seeded. */
function series(n: number): Bar[] {
  let seed = 12345;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(rand() || 1e-12)) * Math.cos(2 * Math.PI * rand());
  const t0 = Date.UTC(2020, 0, 1);
  const bars: Bar[] = [];
  let price = 100;
  for (let i = 0; i < n; i++) {
    const lower = 95 * Math.exp(0.00002 * i);
    const upper = 105 * Math.exp(0.00002 * i);
    const open = price;
    price *= Math.exp(0.004 * gauss());
    if (price > upper) price = upper - (price - upper);
    if (price < lower) price = lower + (lower - price);
    bars.push({
      ts: new Date(t0 + i * 3_600_000),
      open: open.toFixed(4),
      high: Math.max(open, price, Math.min(upper, Math.max(open, price) * (1 + 0.001 * rand())))
        .toFixed(4),
      low: Math.min(open, price, Math.max(lower, Math.min(open, price) * (1 - 0.001 * rand())))
        .toFixed(4),
      close: price.toFixed(4),
      volume: "1000",
    });
  }
  return bars;
}

async function time(fn: () => unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Runs the scan bench and prints its table and verdicts. */
export async function bench(): Promise<void> {
  await using t = await createTestDb("postgres");
  const trader = await insertTrader(t.db);
  const key = { userId: trader.userId, symbol: "BENCH", timeframe: "1h" as const };
  await upsertBars(t.db, { ...key, source: "csv" }, series(SIZES[SIZES.length - 1]!));
  await t.db.query("ANALYZE bars");
  const rows: { n: number; read: number; detect: number; lines: number }[] = [];
  for (const n of SIZES) {
    let bars: Bar[] = [];
    await readBars(t.db, key, { limit: n }); // warm-up
    const reads: number[] = [];
    for (let i = 0; i < REPS; i++) {
      reads.push(await time(async () => bars = await readBars(t.db, key, { limit: n })));
    }
    let lines = 0;
    detectTrendlines(bars); // warm-up (JIT)
    const detects: number[] = [];
    for (let i = 0; i < REPS; i++) {
      detects.push(await time(() => lines = detectTrendlines(bars).length));
    }
    rows.push({ n, read: median(reads), detect: median(detects), lines });
  }
  writeLine(`PostgreSQL, one symbol, median of ${REPS} runs`);
  writeTable(
    ["bars", "read ms", "detect ms", "detect/read", "lines", "detect growth", "n·log n growth"],
    rows.map((r, i) => {
      const prev = rows[i - 1];
      return [
        r.n.toLocaleString("en-US"),
        ms(r.read),
        ms(r.detect),
        ratio(r.detect / r.read),
        String(r.lines),
        prev ? growth(prev.n, prev.detect, r.n, r.detect).toFixed(2) : "",
        prev ? nLogNGrowth(prev.n, r.n).toFixed(2) : "",
      ];
    }),
  );
  const at5k = rows.find((r) => r.n === 5_000)!;
  const cheap = at5k.detect <= at5k.read;
  writeLine(
    `${cheap ? "PASS" : "FAIL"} detection at 5,000 bars costs ${ms(at5k.detect)} ms, the read ${
      ms(at5k.read)
    } ms (${ratio(at5k.detect / at5k.read)}; target ≤ ×1.00)`,
  );
  for (let i = 1; i < rows.length; i++) {
    const [a, b] = [rows[i - 1]!, rows[i]!];
    const g = growth(a.n, a.detect, b.n, b.detect);
    const limit = nLogNGrowth(a.n, b.n) + SLACK;
    writeLine(
      `${g <= limit ? "PASS" : "FAIL"} detection grows with exponent ${g.toFixed(2)} from ${
        a.n.toLocaleString("en-US")
      } to ${b.n.toLocaleString("en-US")} bars (n·log n: ${(limit - SLACK).toFixed(2)}, +${SLACK})`,
    );
  }
}

function growth(n1: number, t1: number, n2: number, t2: number): number {
  return Math.log(t2 / t1) / Math.log(n2 / n1);
}

function nLogNGrowth(n1: number, n2: number): number {
  return growth(n1, n1 * Math.log(n1), n2, n2 * Math.log(n2));
}

if (import.meta.main) await bench();
