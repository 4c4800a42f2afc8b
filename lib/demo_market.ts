/**
 * A made-up market for demo data (`deno task seed`): a seeded PRNG, bars that trend in legs
 * with swings between them, and a trading plan over those bars. Pure and deterministic: the
 * same seed and end time give the same bars and the same plan.
 */
import type { Bar } from "../db/bars.ts";

/** A demo instrument: the ticker an alert carries, the broker symbol it maps to, its manners. */
export interface DemoInstrument {
  ticker: string;
  symbol: string;
  /** Price at the start of the history. */
  price: number;
  /** Typical daily move, as a fraction (0.015 = 1.5 %). */
  dailyVol: number;
  /** Order size range [min, max]; whole numbers unless `fractional`. */
  quantity: [number, number];
  fractional?: boolean;
  /** Trades around the clock (crypto): hourly bars every hour, daily bars every day. */
  crypto?: boolean;
}

/** The instruments the demo trades. */
export const DEMO_INSTRUMENTS: readonly DemoInstrument[] = [
  { ticker: "NASDAQ:AAPL", symbol: "AAPL", price: 172, dailyVol: 0.016, quantity: [10, 60] },
  { ticker: "NASDAQ:MSFT", symbol: "MSFT", price: 395, dailyVol: 0.015, quantity: [5, 30] },
  { ticker: "NASDAQ:NVDA", symbol: "NVDA", price: 96, dailyVol: 0.028, quantity: [20, 120] },
  { ticker: "AMEX:SPY", symbol: "SPY", price: 528, dailyVol: 0.009, quantity: [5, 25] },
  {
    ticker: "COINBASE:BTCUSD",
    symbol: "BTC/USD",
    price: 61_500,
    dailyVol: 0.03,
    quantity: [0.02, 0.25],
    fractional: true,
    crypto: true,
  },
];

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Hourly bars of a US equity session, by UTC open hour (13:30–20:00 ET-ish, rounded). */
const SESSION_HOURS = [14, 15, 16, 17, 18, 19, 20];

/** mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
export function createPrng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw (Box–Muller). */
function normal(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Bars of one instrument on both timeframes the demo uses. */
export interface DemoBars {
  daily: Bar[];
  hourly: Bar[];
}

/**
 * A price path in channels: a drifting base line plus a steady swing around it and a little
 * noise, so lows keep coming back to a rising (or falling) support and highs to a resistance —
 * the shape trendlines are drawn on. The drift changes now and then, starting a new channel.
 */
class Walk {
  #level: number;
  #sigma: number;
  #slope = 0;
  #left = 0;
  #t = 0;
  #amplitude: number;
  #period: number;
  #close: number;
  #random: () => number;
  constructor(price: number, sigma: number, random: () => number) {
    this.#level = Math.log(price);
    this.#close = price;
    this.#sigma = sigma;
    this.#random = random;
    this.#amplitude = sigma * (2 + 1.5 * random());
    this.#period = 16 + Math.floor(random() * 12);
  }
  get price(): number {
    return this.#close;
  }
  /** One bar: open at the last close, close after one step, wicks around them. */
  step(ts: Date, volumeBase: number, decimals: number): Bar {
    if (this.#left <= 0) {
      // A new channel: mostly up (the demo market trends), sometimes down.
      const up = this.#random() < 0.65;
      this.#slope = (up ? 1 : -1) * this.#sigma * (0.08 + 0.2 * this.#random());
      this.#left = 60 + Math.floor(this.#random() * 80);
    }
    this.#left--;
    this.#t++;
    this.#level += this.#slope;
    const swing = this.#amplitude * Math.sin((2 * Math.PI * this.#t) / this.#period);
    const open = this.#close;
    const close = Math.exp(this.#level + swing + 0.3 * this.#sigma * normal(this.#random));
    const wick = () => Math.abs(normal(this.#random)) * this.#sigma * 0.25;
    const high = Math.max(open, close) * (1 + wick());
    const low = Math.min(open, close) * (1 - wick());
    this.#close = close;
    const volume = volumeBase * (0.6 + this.#random() * 0.8);
    return {
      ts,
      open: open.toFixed(decimals),
      high: high.toFixed(decimals),
      low: low.toFixed(decimals),
      close: close.toFixed(decimals),
      volume: volume.toFixed(decimals === 2 ? 0 : 4),
    };
  }
}

function isWeekday(ms: number): boolean {
  const day = new Date(ms).getUTCDay();
  return day !== 0 && day !== 6;
}

/**
 * Bars of `instrument` up to `end`: `hourlyDays` days of hourly bars (the session's hours for
 * equities, every hour for crypto), and daily bars for `dailyDays` days before them followed by
 * the hourly bars aggregated per UTC day, so both timeframes tell the same story.
 */
export function demoBars(
  instrument: DemoInstrument,
  options: { end: number; hourlyDays: number; dailyDays: number; random: () => number },
): DemoBars {
  const { random } = options;
  const lastHour = Math.floor(options.end / HOUR_MS) * HOUR_MS - HOUR_MS; // last closed bar
  const hourlyStart = Math.floor((lastHour - options.hourlyDays * DAY_MS) / DAY_MS) * DAY_MS;
  const dailyStart = hourlyStart - options.dailyDays * DAY_MS;
  const barsPerDay = instrument.crypto ? 24 : SESSION_HOURS.length;
  const dailySigma = instrument.dailyVol;
  const hourlySigma = dailySigma / Math.sqrt(barsPerDay);
  const volumeBase = instrument.crypto ? 40 : 30_000_000 / instrument.price * 10;

  const daily: Bar[] = [];
  const dayWalk = new Walk(instrument.price, dailySigma, random);
  for (let t = dailyStart; t < hourlyStart; t += DAY_MS) {
    if (!instrument.crypto && !isWeekday(t)) continue;
    daily.push(dayWalk.step(new Date(t), volumeBase * barsPerDay, 2));
  }
  const hourly: Bar[] = [];
  const hourWalk = new Walk(dayWalk.price, hourlySigma, random);
  for (let t = hourlyStart; t <= lastHour; t += HOUR_MS) {
    if (!instrument.crypto) {
      if (!isWeekday(t) || !SESSION_HOURS.includes(new Date(t).getUTCHours())) continue;
    }
    hourly.push(hourWalk.step(new Date(t), volumeBase, 2));
  }
  const byDay = new Map<number, Bar[]>();
  for (const bar of hourly) {
    const day = Math.floor(bar.ts.getTime() / DAY_MS) * DAY_MS;
    byDay.set(day, [...byDay.get(day) ?? [], bar]);
  }
  for (const [day, bars] of byDay) {
    daily.push({
      ts: new Date(day),
      open: bars[0]!.open,
      high: Math.max(...bars.map((b) => Number(b.high))).toFixed(2),
      low: Math.min(...bars.map((b) => Number(b.low))).toFixed(2),
      close: bars.at(-1)!.close,
      volume: bars.reduce((sum, b) => sum + Number(b.volume), 0).toFixed(0),
    });
  }
  return { daily, hourly };
}

/** One alert of the plan, sent when the bar it reacts to closes. */
export interface PlannedAlert {
  at: number;
  instrument: DemoInstrument;
  action: "buy" | "sell" | "close";
  quantity?: number;
  price: string;
  strategy: string;
  comment: string;
}

/**
 * A swing-trading plan over the hourly bars from `from` on: flat → enter long (or, less often,
 * short) → sometimes add → close a few hours to days later. Positions open at the end stay
 * open (with an add at a later price, so they show unrealized P&L).
 */
export function demoPlan(
  instrument: DemoInstrument,
  hourly: readonly Bar[],
  options: { from: number; random: () => number },
): PlannedAlert[] {
  const { random } = options;
  const out: PlannedAlert[] = [];
  const bars = hourly.filter((b) => b.ts.getTime() >= options.from);
  const perDay = instrument.crypto ? 24 : SESSION_HOURS.length;
  let side: "long" | "short" | null = null;
  let holdLeft = 0;
  let added = false;
  const size = () => {
    const [min, max] = instrument.quantity;
    const q = min + random() * (max - min);
    return instrument.fractional ? Math.round(q * 1000) / 1000 : Math.round(q);
  };
  const strategy = instrument.crypto ? "btc-swing" : "trend-pullback";
  for (let i = 0; i < bars.length - 1; i++) {
    const bar = bars[i]!;
    // Alerts fire when the bar closes, a moment after its open time plus an hour.
    const at = bar.ts.getTime() + HOUR_MS + 200 + Math.floor(random() * 2_500);
    const base = { at, instrument, price: bar.close, strategy };
    if (side === null) {
      if (random() < 1.6 / perDay) {
        side = random() < 0.75 ? "long" : "short";
        holdLeft = Math.floor(perDay * (0.5 + random() * 3));
        added = false;
        out.push({
          ...base,
          action: side === "long" ? "buy" : "sell",
          quantity: size(),
          comment: side === "long" ? "pullback to rising support" : "rejected at resistance",
        });
      }
      continue;
    }
    holdLeft--;
    if (!added && holdLeft > 2 && random() < 0.6 / perDay) {
      added = true;
      out.push({
        ...base,
        action: side === "long" ? "buy" : "sell",
        quantity: size(),
        comment: "add on strength",
      });
      continue;
    }
    if (holdLeft <= 0) {
      out.push({ ...base, action: "close", comment: "target reached / time stop" });
      side = null;
    }
  }
  // An open position at the end shows unrealized P&L only if it was filled at two prices.
  const last = out.at(-1);
  if (last && last.action !== "close" && !added) {
    const bar = bars.at(-1)!;
    out.push({
      at: bar.ts.getTime() + HOUR_MS + 300,
      instrument,
      action: last.action,
      quantity: size(),
      price: bar.close,
      strategy,
      comment: "add on strength",
    });
  }
  return out;
}
