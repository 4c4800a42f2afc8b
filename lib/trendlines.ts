/**
 * Trendline detection and alert evaluation over bars, pure and synchronous. Prices arrive as
 * decimal strings; they become numbers here for geometry only (a line is never a price we
 * trade at). Time is measured in hours, so gaps in the bars (weekends) do not bend a line.
 *
 * Cost: pivots are found in O(n·k); each pivot is paired with at most `maxPairPivots` later
 * pivots, and a pair's touches are counted over at most `touchPivots` later pivots while the
 * closes in between are scanned once, so candidates cost O(n) for fixed settings. Only the best
 * candidates (sorted, O(c·log c)) are followed to the last bar, and that scan stops at the first
 * close through the line.
 */
import type { Bar } from "../db/bars.ts";

/** Scan settings of one trader; every field has a default. */
export interface ScanSettings {
  /** Bars on each side of a pivot (fractal window). */
  pivotWindow: number;
  /** How the touch tolerance is measured: a percent of price, or a multiple of the ATR(14). */
  toleranceMode: "percent" | "atr";
  /** Percent of price (mode "percent", 0.1 = 0.1%) or ATR multiple (mode "atr"). */
  tolerance: number;
  /** Touches a line needs (its two anchors count). */
  minTouches: number;
  /** Most lines kept per symbol and timeframe. */
  maxLines: number;
}

/** Default scan settings. */
export const DEFAULT_SCAN_SETTINGS: Readonly<ScanSettings> = Object.freeze({
  pivotWindow: 5,
  toleranceMode: "percent",
  tolerance: 0.1,
  minTouches: 3,
  maxLines: 5,
});

/** Limits that keep detection near-linear; not trader settings. */
export interface DetectLimits {
  /** Each pivot pairs with at most this many later pivots of its kind. */
  maxPairPivots: number;
  /** Touches are counted over at most this many pivots after the first anchor. */
  touchPivots: number;
  /** At most this many candidates are followed to the last bar. */
  maxTailChecks: number;
}

const DEFAULT_LIMITS: DetectLimits = { maxPairPivots: 12, touchPivots: 40, maxTailChecks: 200 };

/** A detected line. `t1/p1` and `t2/p2` are its two anchor pivots. */
export interface Trendline {
  kind: "support" | "resistance";
  t1: Date;
  p1: number;
  t2: Date;
  p2: number;
  /** Price change per hour. */
  slopePerHour: number;
  touches: number;
  /** Open time of each touching bar, anchors included. */
  touchedAt: Date[];
  score: number;
}

const HOUR_MS = 3_600_000;

/** The value of `line` at time `at`. */
export function lineValue(line: Pick<Trendline, "t1" | "p1" | "slopePerHour">, at: Date): number {
  return line.p1 + line.slopePerHour * (at.getTime() - line.t1.getTime()) / HOUR_MS;
}

/** Bars as columns of numbers. */
interface Series {
  n: number;
  t: Float64Array;
  high: Float64Array;
  low: Float64Array;
  close: Float64Array;
  tol: Float64Array;
}

function toSeries(bars: readonly Bar[], settings: ScanSettings): Series {
  const n = bars.length;
  const s: Series = {
    n,
    t: new Float64Array(n),
    high: new Float64Array(n),
    low: new Float64Array(n),
    close: new Float64Array(n),
    tol: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    const b = bars[i]!;
    s.t[i] = b.ts.getTime() / HOUR_MS;
    s.high[i] = Number(b.high);
    s.low[i] = Number(b.low);
    s.close[i] = Number(b.close);
  }
  if (settings.toleranceMode === "atr") {
    // Wilder's ATR(14), seeded with the mean true range of what is there.
    let atr = 0;
    for (let i = 0; i < n; i++) {
      const tr = i === 0 ? s.high[i]! - s.low[i]! : Math.max(
        s.high[i]! - s.low[i]!,
        Math.abs(s.high[i]! - s.close[i - 1]!),
        Math.abs(s.low[i]! - s.close[i - 1]!),
      );
      atr = i < 14 ? (atr * i + tr) / (i + 1) : (atr * 13 + tr) / 14;
      s.tol[i] = atr * settings.tolerance;
    }
  } else {
    for (let i = 0; i < n; i++) s.tol[i] = s.close[i]! * settings.tolerance / 100;
  }
  return s;
}

/** Indices of fractal pivots: strictly beyond the `k` bars before, at least the `k` after. */
export function findPivots(values: ArrayLike<number>, k: number, kind: "high" | "low"): number[] {
  const out: number[] = [];
  const sign = kind === "high" ? 1 : -1;
  for (let i = k; i < values.length - k; i++) {
    const v = sign * values[i]!;
    let pivot = true;
    for (let j = 1; j <= k && pivot; j++) {
      if (sign * values[i - j]! >= v || sign * values[i + j]! > v) pivot = false;
    }
    if (pivot) out.push(i);
  }
  return out;
}

interface Candidate {
  a: number;
  slope: number;
  touches: number[];
  /** Last bar index checked for a close through the line. */
  checkedTo: number;
  score: number;
}

/**
 * Finds the active trendlines of `bars` (oldest first): lines through two pivots with at least
 * `minTouches` touches, no close through them from the first anchor to the last bar, best
 * score first, near-duplicates removed, at most `maxLines`.
 */
export function detectTrendlines(
  bars: readonly Bar[],
  settings: Partial<ScanSettings> = {},
  limits: Partial<DetectLimits> = {},
): Trendline[] {
  const cfg = { ...DEFAULT_SCAN_SETTINGS, ...settings };
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const s = toSeries(bars, cfg);
  const out: Trendline[] = [];
  for (const kind of ["support", "resistance"] as const) {
    out.push(...detectKind(bars, s, kind, cfg, lim));
  }
  return out.sort((x, y) => y.score - x.score);
}

function detectKind(
  bars: readonly Bar[],
  s: Series,
  kind: "support" | "resistance",
  cfg: ScanSettings,
  lim: DetectLimits,
): Trendline[] {
  // Work on "resistance" geometry: support is the same over negated prices.
  const sign = kind === "resistance" ? 1 : -1;
  const ext = kind === "resistance" ? s.high : s.low;
  const pivots = findPivots(ext, cfg.pivotWindow, kind === "resistance" ? "high" : "low");
  const at = (i: number) => sign * ext[i]!;
  /** True when bar i closes through the line (beyond it by more than the tolerance). */
  const through = (i: number, a: number, slope: number) =>
    sign * s.close[i]! > at(a) + slope * (s.t[i]! - s.t[a]!) + s.tol[i]!;
  const candidates: Candidate[] = [];
  for (let pa = 0; pa < pivots.length; pa++) {
    const a = pivots[pa]!;
    const lastB = Math.min(pivots.length - 1, pa + lim.maxPairPivots);
    const lastC = Math.min(pivots.length - 1, pa + lim.touchPivots);
    for (let pb = pa + 1; pb <= lastB; pb++) {
      const b = pivots[pb]!;
      const slope = (at(b) - at(a)) / (s.t[b]! - s.t[a]!);
      let broken = false;
      for (let i = a + 1; i < b && !broken; i++) broken = through(i, a, slope);
      if (broken) continue;
      // Pivots between the anchors that stick out through the line make it a wrong line.
      const touches = [a];
      let checked = b;
      let valid = true;
      for (let pc = pa + 1; pc <= lastC; pc++) {
        const c = pivots[pc]!;
        if (c === b) {
          touches.push(b);
          continue;
        }
        if (c > b) {
          for (let i = checked + 1; i <= c && !broken; i++) broken = through(i, a, slope);
          if (broken) break;
          checked = c;
        }
        const d = at(c) - (at(a) + slope * (s.t[c]! - s.t[a]!));
        if (Math.abs(d) <= s.tol[c]!) touches.push(c);
        else if (d > s.tol[c]! && c < b) {
          valid = false;
          break;
        }
      }
      if (!valid || broken || touches.length < cfg.minTouches) continue;
      candidates.push({
        a,
        slope,
        touches,
        checkedTo: checked,
        score: score(s, a, slope, touches),
      });
    }
  }
  candidates.sort((x, y) => y.score - x.score);
  const kept: Candidate[] = [];
  let tailChecks = 0;
  for (const c of candidates) {
    if (kept.length >= cfg.maxLines || tailChecks >= lim.maxTailChecks) break;
    if (kept.some((k) => nearDuplicate(s, k, c, at))) continue;
    tailChecks++;
    let broken = false;
    for (let i = c.checkedTo + 1; i < s.n && !broken; i++) broken = through(i, c.a, c.slope);
    if (!broken) kept.push(c);
  }
  return kept.map((c) => {
    const b = c.touches[1]!;
    return {
      kind,
      t1: bars[c.a]!.ts,
      p1: ext[c.a]!,
      t2: bars[b]!.ts,
      p2: ext[c.a]! + sign * c.slope * (s.t[b]! - s.t[c.a]!),
      slopePerHour: sign * c.slope,
      touches: c.touches.length,
      touchedAt: c.touches.map((i) => bars[i]!.ts),
      score: c.score,
    };
  });
}

/** More touches, a longer span and a flatter slope score higher. */
function score(s: Series, a: number, slope: number, touches: number[]): number {
  const last = touches[touches.length - 1]!;
  const span = last - a;
  const price = Math.abs(s.close[a]!) || 1;
  // Percent of price per bar, about the average bar spacing.
  const hoursPerBar = (s.t[last]! - s.t[a]!) / Math.max(1, span);
  const steep = Math.abs(slope) * hoursPerBar / price * 100;
  return touches.length * 10 + 5 * Math.log2(1 + span) - 20 * Math.min(1, steep);
}

/** Two lines are the same when they are within tolerance at both ends of the shorter one. */
function nearDuplicate(
  s: Series,
  x: Candidate,
  y: Candidate,
  at: (i: number) => number,
): boolean {
  const value = (c: Candidate, i: number) => at(c.a) + c.slope * (s.t[i]! - s.t[c.a]!);
  for (const i of [Math.max(x.a, y.a), s.n - 1]) {
    if (Math.abs(value(x, i) - value(y, i)) > 2 * s.tol[i]!) return false;
  }
  return true;
}

/** An alert a bar raises on a line. */
export type TrendlineAlert = "touch" | "break" | "retest";

/**
 * Evaluates one new bar against a line: an active line is broken by a close beyond it by more
 * than `tolerance`, touched when the bar reaches it within `tolerance` and closes on its side; a
 * broken line is retested when price comes back to it within `tolerance` and closes on the
 * side it broke to. Returns null when the bar does none of these.
 */
export function evaluateBar(
  line: Pick<Trendline, "kind" | "t1" | "p1" | "slopePerHour"> & {
    status: "active" | "broken";
  },
  bar: Bar,
  tolerance: number,
): TrendlineAlert | null {
  const v = lineValue(line, bar.ts);
  const sign = line.kind === "resistance" ? 1 : -1;
  const close = sign * Number(bar.close);
  const reach = sign * Number(line.kind === "resistance" ? bar.high : bar.low);
  const back = sign * Number(line.kind === "resistance" ? bar.low : bar.high);
  const level = sign * v;
  if (line.status === "active") {
    if (close > level + tolerance) return "break";
    if (reach >= level - tolerance) return "touch";
    return null;
  }
  if (back <= level + tolerance && close >= level - tolerance) return "retest";
  return null;
}

/** The touch tolerance at each of `bars` (percent of its close, or ATR multiple), in price. */
export function tolerances(
  bars: readonly Bar[],
  settings: Partial<ScanSettings> = {},
): Float64Array {
  return toSeries(bars, { ...DEFAULT_SCAN_SETTINGS, ...settings }).tol;
}
