import assert from "node:assert/strict";
import { mapSymbol, type MapSymbolOptions, SymbolError } from "./symbols.ts";

const NOW = new Date("2026-06-01T15:00:00Z");
const PAPER: MapSymbolOptions = { broker: "paper", now: NOW };
const ALPACA: MapSymbolOptions = { broker: "alpaca", now: NOW };

function symbolOf(ticker: string, options: Partial<MapSymbolOptions> = {}): string {
  return mapSymbol(ticker, { ...PAPER, ...options }).symbol;
}

/** Noon in Chicago on a calendar date, so the date is unambiguous. */
function day(isoDate: string): Date {
  return new Date(`${isoDate}T17:00:00Z`);
}

Deno.test("mapSymbol strips exchange prefixes from equities", () => {
  assert.deepEqual(mapSymbol("NASDAQ:AAPL", ALPACA), {
    symbol: "AAPL",
    root: "AAPL",
    assetClass: "equity",
  });
  assert.deepEqual(mapSymbol("NYSE:BRK.B", ALPACA), {
    symbol: "BRK.B",
    root: "BRK.B",
    assetClass: "equity",
  });
  assert.equal(symbolOf("aapl"), "AAPL");
  assert.equal(symbolOf("SPY"), "SPY");
});

Deno.test("mapSymbol recognizes crypto by known base or crypto exchange", () => {
  const cases: [string, string][] = [
    ["BTCUSD", "BTC/USD"],
    ["COINBASE:BTCUSD", "BTC/USD"],
    ["BINANCE:ETHUSDT", "ETH/USDT"],
    ["SOLUSDC", "SOL/USDC"],
    ["BTC/USD", "BTC/USD"],
    ["btc/usdt", "BTC/USDT"],
    ["USDCUSD", "USDC/USD"],
    ["KRAKEN:FOOUSD", "FOO/USD"],
    ["BYBIT:NEWCOINUSDT", "NEWCOIN/USDT"],
  ];
  for (const [ticker, symbol] of cases) {
    assert.deepEqual(mapSymbol(ticker, ALPACA), {
      symbol,
      root: symbol.split("/")[0],
      assetClass: "crypto",
    }, ticker);
  }
});

Deno.test("mapSymbol keeps equities that merely end in USD", () => {
  assert.deepEqual(mapSymbol("NYSE:FOOUSD", ALPACA), {
    symbol: "FOOUSD",
    root: "FOOUSD",
    assetClass: "equity",
  });
  assert.equal(mapSymbol("ABCUSD", ALPACA).assetClass, "equity");
});

Deno.test("mapSymbol rejects crypto pairs with an unsupported quote", () => {
  assert.throws(() => mapSymbol("BTC/EUR", PAPER), {
    name: "SymbolError",
    message: 'Cannot map symbol "BTC/EUR": unsupported quote currency "EUR"',
  });
  assert.throws(() => mapSymbol("COINBASE:BTCEUR", PAPER), {
    message: 'Cannot map symbol "COINBASE:BTCEUR": no supported quote currency (USDT, USDC, USD)',
  });
  assert.throws(() => mapSymbol("BTC/", PAPER), SymbolError);
});

Deno.test("mapSymbol applies overrides by full ticker first, then without prefix, any case", () => {
  const overrides = { "cme_mini:nq1!": "MNQM6", "NQ1!": "NQM6", "spy": "SPY.X" };
  assert.deepEqual(mapSymbol("CME_MINI:NQ1!", { ...PAPER, overrides }), {
    symbol: "MNQM6",
    root: "MNQ",
    assetClass: "future",
  });
  assert.equal(symbolOf("NQ1!", { overrides }), "NQM6");
  assert.equal(symbolOf("OTHER:NQ1!", { overrides }), "NQM6");
  assert.deepEqual(mapSymbol("AMEX:SPY", { ...PAPER, overrides }), {
    symbol: "SPY.X",
    root: "SPY.X",
    assetClass: "equity",
  });
  assert.deepEqual(mapSymbol("XBTUSD", { ...PAPER, overrides: { XBTUSD: "BTC/USD" } }), {
    symbol: "BTC/USD",
    root: "BTC",
    assetClass: "crypto",
  });
  // An override wins over the built-in rules and even over an unknown futures root.
  assert.deepEqual(mapSymbol("ZN1!", { ...PAPER, overrides: { "ZN1!": "ZNU6" } }), {
    symbol: "ZNU6",
    root: "ZN",
    assetClass: "future",
  });
  assert.throws(() => mapSymbol("AAPL", { ...PAPER, overrides: { AAPL: "AA PL" } }), {
    message: 'Cannot map symbol "AAPL": the override "AA PL" is not a broker symbol',
  });
});

Deno.test("mapSymbol maps continuous index futures to the quarterly front contract", () => {
  assert.deepEqual(mapSymbol("CME_MINI:NQ1!", PAPER), {
    symbol: "NQM6",
    root: "NQ",
    assetClass: "future",
  });
  assert.equal(symbolOf("ES1!"), "ESM6");
  assert.equal(symbolOf("ES2!"), "ESU6");
  assert.equal(symbolOf("MNQ1!"), "MNQM6");
  assert.equal(symbolOf("M2K1!"), "M2KM6");
  assert.equal(symbolOf("RTY1!"), "RTYM6");
});

Deno.test("mapSymbol rolls index futures 8 days before the third Friday (Dec 2026 → 2026-12-10)", () => {
  // Third Friday of December 2026 is the 18th; the roll is Thursday the 10th.
  assert.equal(symbolOf("ES1!", { now: day("2026-12-09") }), "ESZ6");
  assert.equal(symbolOf("ES2!", { now: day("2026-12-09") }), "ESH7");
  assert.equal(symbolOf("ES1!", { now: day("2026-12-10") }), "ESH7");
  assert.equal(symbolOf("ES2!", { now: day("2026-12-10") }), "ESM7");
  // The boundary is the Chicago calendar date: 05:59Z on the 10th is still the 9th there.
  assert.equal(symbolOf("ES1!", { now: new Date("2026-12-10T05:59:00Z") }), "ESZ6");
  assert.equal(symbolOf("ES1!", { now: new Date("2026-12-10T06:00:00Z") }), "ESH7");
  // March 2027: third Friday the 19th, roll on the 11th.
  assert.equal(symbolOf("NQ1!", { now: day("2027-03-10") }), "NQH7");
  assert.equal(symbolOf("NQ1!", { now: day("2027-03-11") }), "NQM7");
  // Between expiries the front is simply the next quarter.
  assert.equal(symbolOf("YM1!", { now: day("2026-12-31") }), "YMH7");
});

Deno.test("mapSymbol rolls energy monthly on the 15th of the month before the contract month", () => {
  assert.equal(symbolOf("CL1!", { now: day("2026-12-14") }), "CLF7");
  assert.equal(symbolOf("CL2!", { now: day("2026-12-14") }), "CLG7");
  assert.equal(symbolOf("CL1!", { now: day("2026-12-15") }), "CLG7");
  assert.equal(symbolOf("CL2!", { now: day("2026-12-15") }), "CLH7");
  assert.equal(symbolOf("NYMEX:NG1!", { now: day("2026-06-01") }), "NGN6");
  assert.equal(symbolOf("MCL1!", { now: day("2026-06-15") }), "MCLQ6");
});

Deno.test("mapSymbol rolls metals through their active months", () => {
  // Gold: G J M Q V Z. From 2026-06-15 the August contract leads.
  assert.equal(symbolOf("COMEX:GC1!", { now: day("2026-06-14") }), "GCQ6");
  assert.equal(symbolOf("GC1!", { now: day("2026-07-14") }), "GCQ6");
  assert.equal(symbolOf("GC1!", { now: day("2026-07-15") }), "GCV6");
  assert.equal(symbolOf("GC2!", { now: day("2026-07-15") }), "GCZ6");
  assert.equal(symbolOf("MGC1!", { now: day("2026-12-20") }), "MGCG7");
  // Silver: H K N U Z.
  assert.equal(symbolOf("SI1!", { now: day("2026-06-14") }), "SIN6");
  assert.equal(symbolOf("SI1!", { now: day("2026-06-15") }), "SIU6");
});

Deno.test("mapSymbol maps full-size roots to micros when the account trades micros", () => {
  const micro = { microFutures: true, now: day("2026-12-01") };
  const cases: [string, string][] = [
    ["ES1!", "MESZ6"],
    ["NQ1!", "MNQZ6"],
    ["YM1!", "MYMZ6"],
    ["RTY1!", "M2KZ6"],
    ["CL1!", "MCLF7"],
    ["GC1!", "MGCG7"],
    ["SI1!", "SILH7"],
    ["MNQ1!", "MNQZ6"],
    ["NG1!", "NGF7"],
  ];
  for (const [ticker, symbol] of cases) assert.equal(symbolOf(ticker, micro), symbol, ticker);
  assert.equal(mapSymbol("CME_MINI:NQ1!", { ...PAPER, ...micro }).root, "MNQ");
});

Deno.test("mapSymbol rejects unknown futures roots, far contracts and futures on Alpaca", () => {
  assert.throws(() => mapSymbol("ZN1!", PAPER), {
    name: "SymbolError",
    message: 'Cannot map symbol "ZN1!": unknown futures root "ZN"',
  });
  assert.throws(() => mapSymbol("ES3!", PAPER), {
    message: 'Cannot map symbol "ES3!": only "1!" (front month) and "2!" (next) are supported',
  });
  assert.throws(() => mapSymbol("ES1!", ALPACA), {
    message: 'Cannot map symbol "ES1!": Alpaca does not trade futures',
  });
  assert.throws(() => mapSymbol("XYZ!!", PAPER), {
    message: 'Cannot map symbol "XYZ!!": continuous futures look like "NQ1!" or "NQ2!"',
  });
});

Deno.test("mapSymbol rejects garbage with a SymbolError", () => {
  const garbage = [
    "",
    "A".repeat(33),
    "AAPL US",
    "AAPL$",
    "ÄPFEL",
    "NASDAQ:",
    ":AAPL",
    "A:B:C",
    ".X",
  ];
  for (const ticker of garbage) {
    assert.throws(() => mapSymbol(ticker, PAPER), SymbolError, JSON.stringify(ticker));
  }
  assert.throws(() => mapSymbol("AAPL US", PAPER), {
    message: 'Cannot map symbol "AAPL US": only letters, digits and . _ ! : / - are allowed',
  });
  assert.throws(() => mapSymbol("", PAPER), {
    message: 'Cannot map symbol "": a symbol has 1 to 32 characters',
  });
  assert.equal(symbolOf("A".repeat(32)), "A".repeat(32));
  const long = new SymbolError("X".repeat(100), "too long");
  assert.equal(long.message, `Cannot map symbol "${"X".repeat(40)}…": too long`);
  assert.equal(long.ticker, "X".repeat(100));
});
