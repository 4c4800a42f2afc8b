import assert from "node:assert/strict";
import {
  compareDecimals,
  parseBarTime,
  parseDecimal,
  parseTimeframe,
  validateBar,
} from "./bar_input.ts";

Deno.test("parseTimeframe reads TradingView intervals and ours, and nothing else", () => {
  assert.equal(parseTimeframe("240"), "4h");
  assert.equal(parseTimeframe(60), "1h");
  assert.equal(parseTimeframe("1d"), "1d");
  assert.equal(parseTimeframe("d"), "1d");
  assert.equal(parseTimeframe("1W"), "1w");
  assert.equal(parseTimeframe("3"), null);
  assert.equal(parseTimeframe("M"), null);
  assert.equal(parseTimeframe(undefined), null);
});

Deno.test("parseDecimal keeps numeric strings exact and writes numbers without exponents", () => {
  assert.equal(parseDecimal("190.123456789"), "190.123456789");
  assert.equal(parseDecimal(0.0000001), "0.0000001");
  assert.equal(parseDecimal(".5"), "0.5");
  assert.equal(parseDecimal(" 12 "), "12");
  assert.equal(parseDecimal("-1"), null);
  assert.equal(parseDecimal("1e3"), null);
  assert.equal(parseDecimal(Number.NaN), null);
  assert.equal(parseDecimal(true), null);
});

Deno.test("compareDecimals compares exactly, whatever the digits", () => {
  assert.equal(compareDecimals("10", "9.99999999999999999"), 1);
  assert.equal(compareDecimals("0.30", "0.3"), 0);
  assert.equal(compareDecimals("007.1", "7.10000000000000000001"), -1);
});

Deno.test("parseBarTime reads ISO 8601 with a zone and epoch numbers in the given unit", () => {
  const at = "2026-01-05T14:00:00.000Z";
  assert.equal(parseBarTime("2026-01-05T14:00:00Z", "ms")?.toISOString(), at);
  assert.equal(parseBarTime("2026-01-05T09:00:00-05:00", "ms")?.toISOString(), at);
  assert.equal(parseBarTime(Date.parse(at), "ms")?.toISOString(), at);
  assert.equal(parseBarTime(String(Date.parse(at) / 1000), "s")?.toISOString(), at);
  assert.equal(parseBarTime("2026-01-05", "s")?.toISOString(), "2026-01-05T00:00:00.000Z");
  assert.equal(parseBarTime("2026-01-05T14:00:00", "ms"), null, "no zone, no guess");
  assert.equal(parseBarTime(Date.parse(at), "s"), null, "ms read as seconds is out of range");
});

Deno.test("validateBar names every bad field and defaults a missing volume to 0", () => {
  const ok = validateBar({ open: 1, high: 2, low: 0.5, close: "1.5", time: 0 }, "ms");
  assert.ok(ok.ok);
  assert.equal(ok.bar.volume, "0");
  const fx = validateBar({ open: 1, high: 2, low: 0.5, close: 1, volume: "NaN", time: 0 }, "ms");
  assert.ok(fx.ok && fx.bar.volume === "0", "TradingView's NaN volume of forex is 0");
  const bad = validateBar({ open: 1, high: 1.2, low: 1.1, close: "1.15", volume: "x" }, "ms");
  assert.ok(!bad.ok);
  assert.deepEqual(bad.problems.map((p) => p.field), ["volume", "time", "low"]);
});
