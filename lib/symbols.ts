/**
 * TradingView tickers to broker symbols: `NASDAQ:AAPL` → `AAPL`, `BTCUSD` → `BTC/USD`,
 * `NQ1!` → `NQZ6` (or `MNQZ6` for an account that trades micros), with per-account overrides
 * first.
 *
 * Continuous futures (`ROOT1!` front, `ROOT2!` the next) resolve to a dated contract
 * `ROOT + month letter + last digit of the year` on the calendar date of `now` in Chicago (the
 * CME's home). The front contract is the first listed contract whose roll date is still ahead:
 *
 * - Equity index (ES, NQ, YM, RTY, MES, MNQ, MYM, M2K), quarterly H M U Z: rolls 8 days before
 *   the third Friday of its expiry month (the Thursday of the week before), when volume moves
 *   to the next quarter. December 2026 expires Friday 2026-12-18, so `ES1!` is `ESZ6` through
 *   2026-12-09 and `ESH7` from 2026-12-10.
 * - Energy (CL, NG, MCL), every month, and metals (GC, MGC: G J M Q V Z; SI, SIL: H K N U Z):
 *   a contract for month M rolls on the 15th of month M−1, ahead of CL's last trading day
 *   (around the 20th of M−1) and of NG's and the metals' first notice (end of M−1). So `CL1!`
 *   is `CLF7` (January 2027) through 2026-12-14 and `CLG7` from 2026-12-15.
 */
import type { BrokerKind } from "../brokers/broker.ts";
import { zonedTime } from "./trading_session.ts";

/** What kind of instrument a mapped symbol is. */
export type AssetClass = "equity" | "crypto" | "future";

/** A broker symbol with the root it trades and its asset class. */
export interface MappedSymbol {
  /** The broker's symbol: `AAPL`, `BTC/USD`, `MNQZ6`. */
  symbol: string;
  /**
   * The instrument's root as the broker trades it: the equity symbol, the crypto base (`BTC`),
   * the futures root after micro mapping (`MNQ`). Risk's `allowed_symbols` matches it.
   */
  root: string;
  assetClass: AssetClass;
}

/** Options of {@linkcode mapSymbol}. */
export interface MapSymbolOptions {
  broker: BrokerKind;
  /** Per-account rules, ticker → broker symbol; keys with or without exchange prefix, any case. */
  overrides?: Record<string, string>;
  /** Trade micro contracts instead of full-size ones (ES → MES, NQ → MNQ, …). */
  microFutures?: boolean;
  /** Decides the front month of continuous futures. */
  now: Date;
}

/** A ticker that cannot be mapped; the executor rejects the signal with its message. */
export class SymbolError extends Error {
  /** The ticker as received. */
  readonly ticker: string;

  constructor(ticker: string, why: string) {
    super(`Cannot map symbol "${clip(ticker)}": ${why}`);
    this.name = "SymbolError";
    this.ticker = ticker;
  }
}

/** Bases recognized as crypto without an exchange prefix (`BTCUSD`). */
export const CRYPTO_BASES: ReadonlySet<string> = new Set([
  "BTC",
  "ETH",
  "SOL",
  "DOGE",
  "LTC",
  "BCH",
  "LINK",
  "UNI",
  "AAVE",
  "AVAX",
  "DOT",
  "SHIB",
  "XRP",
  "MATIC",
  "POL",
  "ADA",
  "XTZ",
  "SUSHI",
  "YFI",
  "CRV",
  "BAT",
  "GRT",
  "MKR",
  "PEPE",
  "TRUMP",
  "USDT",
  "USDC",
  "ARB",
  "ONDO",
  "RENDER",
  "HYPE",
  "SKY",
  "XLM",
  "FIL",
  "NEAR",
  "ATOM",
]);

/** Exchange prefixes under which any base with a known quote is crypto (`KRAKEN:FOOUSD`). */
export const CRYPTO_EXCHANGES: ReadonlySet<string> = new Set([
  "COINBASE",
  "BINANCE",
  "BINANCEUS",
  "KRAKEN",
  "BITSTAMP",
  "GEMINI",
  "BYBIT",
  "OKX",
  "BITFINEX",
  "CRYPTO",
]);

/** Quote currencies, longest first so `USDT` wins over `USD`. */
const CRYPTO_QUOTES = ["USDT", "USDC", "USD"] as const;

const QUARTERLY = "HMUZ";
const EVERY_MONTH = "FGHJKMNQUVXZ";
const MONTH_CODES = "FGHJKMNQUVXZ";

type RollRule = "index" | "monthly";
interface FutureSpec {
  /** Month letters of the contracts we trade. */
  months: string;
  roll: RollRule;
}

const FUTURES: Record<string, FutureSpec> = {
  ES: { months: QUARTERLY, roll: "index" },
  NQ: { months: QUARTERLY, roll: "index" },
  YM: { months: QUARTERLY, roll: "index" },
  RTY: { months: QUARTERLY, roll: "index" },
  MES: { months: QUARTERLY, roll: "index" },
  MNQ: { months: QUARTERLY, roll: "index" },
  MYM: { months: QUARTERLY, roll: "index" },
  M2K: { months: QUARTERLY, roll: "index" },
  CL: { months: EVERY_MONTH, roll: "monthly" },
  NG: { months: EVERY_MONTH, roll: "monthly" },
  MCL: { months: EVERY_MONTH, roll: "monthly" },
  GC: { months: "GJMQVZ", roll: "monthly" },
  MGC: { months: "GJMQVZ", roll: "monthly" },
  SI: { months: "HKNUZ", roll: "monthly" },
  SIL: { months: "HKNUZ", roll: "monthly" },
};

/** Full-size roots and their micro contracts. */
export const MICRO_FUTURES: Readonly<Record<string, string>> = {
  ES: "MES",
  NQ: "MNQ",
  YM: "MYM",
  RTY: "M2K",
  CL: "MCL",
  GC: "MGC",
  SI: "SIL",
};

/** Day of the month on which energy and metals contracts roll, in the month before expiry. */
const MONTHLY_ROLL_DAY = 15;
/** Days before the third Friday of the expiry month on which index futures roll. */
const INDEX_ROLL_DAYS_BEFORE = 8;

const VALID = /^[A-Z0-9._!:/-]{1,32}$/;
const PREFIX = /^[A-Z0-9_]+$/;
const ASSET = /^[A-Z0-9]+$/;
const EQUITY = /^[A-Z0-9][A-Z0-9._-]*$/;
const CONTINUOUS = /^([A-Z0-9]+)(\d)!$/;

/**
 * Maps a TradingView ticker to the broker's symbol. Throws {@linkcode SymbolError} for anything
 * it cannot map.
 *
 * @example
 * mapSymbol("CME_MINI:NQ1!", { broker: "paper", microFutures: true, now: new Date("2026-12-01") });
 * // { symbol: "MNQZ6", root: "MNQ", assetClass: "future" }
 */
export function mapSymbol(ticker: string, options: MapSymbolOptions): MappedSymbol {
  const upper = ticker.toUpperCase();
  if (!VALID.test(upper)) {
    throw new SymbolError(
      ticker,
      upper.length === 0 || upper.length > 32
        ? "a symbol has 1 to 32 characters"
        : "only letters, digits and . _ ! : / - are allowed",
    );
  }
  const colon = upper.indexOf(":");
  const prefix = colon < 0 ? "" : upper.slice(0, colon);
  const body = colon < 0 ? upper : upper.slice(colon + 1);

  const override = findOverride(upper, body, options.overrides);
  if (override !== undefined) return fromOverride(ticker, body, override);

  if (colon >= 0 && (!PREFIX.test(prefix) || body.length === 0 || body.includes(":"))) {
    throw new SymbolError(ticker, 'expected "EXCHANGE:SYMBOL"');
  }

  const continuous = CONTINUOUS.exec(body);
  if (continuous) return mapFuture(ticker, continuous[1]!, Number(continuous[2]), options);
  if (body.includes("!")) {
    throw new SymbolError(ticker, 'continuous futures look like "NQ1!" or "NQ2!"');
  }

  const crypto = splitCrypto(ticker, prefix, body);
  if (crypto) {
    return { symbol: `${crypto.base}/${crypto.quote}`, root: crypto.base, assetClass: "crypto" };
  }

  if (!EQUITY.test(body)) throw new SymbolError(ticker, "not an equity, crypto or futures symbol");
  return { symbol: body, root: body, assetClass: "equity" };
}

function findOverride(
  full: string,
  body: string,
  overrides: Record<string, string> | undefined,
): string | undefined {
  if (!overrides) return undefined;
  let byBody: string | undefined;
  for (const [key, value] of Object.entries(overrides)) {
    const k = key.toUpperCase();
    if (k === full) return value;
    if (k === body) byBody ??= value;
  }
  return byBody;
}

function fromOverride(ticker: string, body: string, value: string): MappedSymbol {
  const symbol = value.trim().toUpperCase();
  if (!VALID.test(symbol) || symbol.includes(":") || symbol.includes("!")) {
    throw new SymbolError(ticker, `the override "${clip(value)}" is not a broker symbol`);
  }
  const slash = symbol.indexOf("/");
  if (slash > 0) return { symbol, root: symbol.slice(0, slash), assetClass: "crypto" };
  const dated = /^([A-Z0-9]+?)[FGHJKMNQUVXZ]\d{1,2}$/.exec(symbol);
  if (FUTURES[symbol] || (dated && FUTURES[dated[1]!])) {
    return { symbol, root: dated && FUTURES[dated[1]!] ? dated[1]! : symbol, assetClass: "future" };
  }
  if (CONTINUOUS.test(body)) {
    return { symbol, root: dated ? dated[1]! : symbol, assetClass: "future" };
  }
  return { symbol, root: symbol, assetClass: "equity" };
}

function splitCrypto(
  ticker: string,
  prefix: string,
  body: string,
): { base: string; quote: string } | undefined {
  const slash = body.indexOf("/");
  if (slash >= 0) {
    const base = body.slice(0, slash);
    const quote = body.slice(slash + 1);
    if (!ASSET.test(base) || !ASSET.test(quote)) {
      throw new SymbolError(ticker, 'a crypto pair looks like "BTC/USD"');
    }
    if (!(CRYPTO_QUOTES as readonly string[]).includes(quote)) {
      throw new SymbolError(ticker, `unsupported quote currency "${quote}"`);
    }
    return { base, quote };
  }
  const onCryptoExchange = CRYPTO_EXCHANGES.has(prefix);
  for (const quote of CRYPTO_QUOTES) {
    if (!body.endsWith(quote) || body.length === quote.length) continue;
    const base = body.slice(0, -quote.length);
    if (ASSET.test(base) && (onCryptoExchange || CRYPTO_BASES.has(base))) return { base, quote };
  }
  if (onCryptoExchange) {
    throw new SymbolError(ticker, `no supported quote currency (${CRYPTO_QUOTES.join(", ")})`);
  }
  return undefined;
}

function mapFuture(
  ticker: string,
  root: string,
  nth: number,
  options: MapSymbolOptions,
): MappedSymbol {
  if (nth !== 1 && nth !== 2) {
    throw new SymbolError(ticker, 'only "1!" (front month) and "2!" (next) are supported');
  }
  if (options.broker === "alpaca") throw new SymbolError(ticker, "Alpaca does not trade futures");
  const traded = options.microFutures ? MICRO_FUTURES[root] ?? root : root;
  const spec = FUTURES[traded];
  if (!spec) throw new SymbolError(ticker, `unknown futures root "${root}"`);
  const { year, month } = contractMonth(spec, options.now, nth);
  return {
    symbol: `${traded}${MONTH_CODES[month - 1]}${year % 10}`,
    root: traded,
    assetClass: "future",
  };
}

/** The year and month (1–12) of the `nth` contract (1 = front) trading on `now`. */
function contractMonth(spec: FutureSpec, now: Date, nth: number): { year: number; month: number } {
  const today = zonedTime(now, "America/Chicago");
  const todayKey = dateKey(today.year, today.month, today.day);
  let found = 0;
  for (let i = 0; i < 36; i++) {
    const year = today.year + Math.floor((today.month - 1 + i) / 12);
    const month = ((today.month - 1 + i) % 12) + 1;
    if (!spec.months.includes(MONTH_CODES[month - 1]!)) continue;
    if (rollDateKey(spec.roll, year, month) <= todayKey) continue;
    if (++found === nth) return { year, month };
  }
  throw new RangeError(`Cannot find contract ${nth} for "${now.toISOString()}"`);
}

/** The date (as YYYYMMDD) from which the contract of `year`/`month` is no longer the front. */
function rollDateKey(rule: RollRule, year: number, month: number): number {
  if (rule === "index") {
    const firstWeekday = new Date(Date.UTC(year, month - 1, 1)).getUTCDay();
    const thirdFriday = 1 + ((5 - firstWeekday + 7) % 7) + 14;
    return dateKey(year, month, thirdFriday - INDEX_ROLL_DAYS_BEFORE);
  }
  return month === 1
    ? dateKey(year - 1, 12, MONTHLY_ROLL_DAY)
    : dateKey(year, month - 1, MONTHLY_ROLL_DAY);
}

function dateKey(year: number, month: number, day: number): number {
  return year * 10_000 + month * 100 + day;
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
