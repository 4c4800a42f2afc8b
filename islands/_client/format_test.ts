import assert from "node:assert/strict";
import { accountKind, formatLatency, formatNumber, formatTime, isTimeZone } from "./format.ts";

Deno.test("formatTime shows the time in the viewer's zone, 24-hour, with a plain layout", () => {
  const at = "2026-11-22T08:00:05.000Z";
  assert.equal(formatTime(at, "UTC"), "2026-11-22 08:00:05");
  assert.equal(formatTime(at, "Asia/Kolkata"), "2026-11-22 13:30:05", "a half-hour offset");
  assert.equal(formatTime(at, "America/Los_Angeles"), "2026-11-22 00:00:05", "midnight is 00");
  assert.equal(formatTime(at, "Pacific/Auckland"), "2026-11-22 21:00:05", "summer south");
  assert.equal(formatTime("2026-11-21T23:30:00Z", "Europe/Berlin"), "2026-11-22 00:30:00");
});

Deno.test("formatTime follows daylight saving time changes", () => {
  // New York springs forward at 02:00 EST on 2026-03-08 (07:00 UTC).
  assert.equal(formatTime("2026-03-08T06:59:59Z", "America/New_York"), "2026-03-08 01:59:59");
  assert.equal(formatTime("2026-03-08T07:00:00Z", "America/New_York"), "2026-03-08 03:00:00");
  // ... and falls back on 2026-11-01: 01:30 happens twice, an hour apart.
  assert.equal(formatTime("2026-11-01T05:30:00Z", "America/New_York"), "2026-11-01 01:30:00");
  assert.equal(formatTime("2026-11-01T06:30:00Z", "America/New_York"), "2026-11-01 01:30:00");
  // Berlin springs forward at 01:00 UTC on 2026-03-29.
  assert.equal(formatTime("2026-03-29T00:59:59Z", "Europe/Berlin"), "2026-03-29 01:59:59");
  assert.equal(formatTime("2026-03-29T01:00:00Z", "Europe/Berlin"), "2026-03-29 03:00:00");
});

Deno.test("formatTime is empty for no time or a bad one", () => {
  assert.equal(formatTime(null, "UTC"), "");
  assert.equal(formatTime(undefined, "UTC"), "");
  assert.equal(formatTime("", "UTC"), "");
  assert.equal(formatTime("not a date", "UTC"), "");
});

Deno.test("isTimeZone knows IANA names and refuses others", () => {
  assert.equal(isTimeZone("Europe/Berlin"), true);
  assert.equal(isTimeZone("UTC"), true);
  assert.equal(isTimeZone("Mars/Olympus"), false);
});

Deno.test("formatLatency: milliseconds under a second, tenths of seconds above", () => {
  const from = "2026-11-22T08:00:00.000Z";
  assert.equal(formatLatency(from, "2026-11-22T08:00:00.042Z"), "42 ms");
  assert.equal(formatLatency(from, from), "0 ms");
  assert.equal(formatLatency(from, "2026-11-22T08:00:00.999Z"), "999 ms");
  assert.equal(formatLatency(from, "2026-11-22T08:00:01.000Z"), "1.0 s");
  assert.equal(formatLatency(from, "2026-11-22T08:00:01.340Z"), "1.3 s");
  assert.equal(formatLatency(from, "2026-11-22T08:02:05.000Z"), "125.0 s");
});

Deno.test("formatLatency is empty when a time is missing, unreadable or out of order", () => {
  const from = "2026-11-22T08:00:00.000Z";
  assert.equal(formatLatency(null, from), "");
  assert.equal(formatLatency(from, undefined), "");
  assert.equal(formatLatency(from, "garbage"), "");
  assert.equal(formatLatency(from, "2026-11-22T07:59:59.000Z"), "", "a clock that went back");
});

Deno.test("numbers: at most 4 decimals from 1 up, 8 below, no trailing zeros, a dash for none", () => {
  assert.equal(formatNumber("53.984601"), "53.9846");
  assert.equal(formatNumber("118936.325178"), "118,936.3252");
  assert.equal(formatNumber("0.00012345"), "0.00012345");
  assert.equal(formatNumber("-0.133"), "-0.133");
  assert.equal(formatNumber("2.50"), "2.5");
  assert.equal(formatNumber(null), "—");
  assert.equal(formatNumber("abc"), "abc");
});

Deno.test("accountKind names a paper account simulated and an Alpaca one live or paper", () => {
  assert.equal(accountKind({ broker: "paper", live: false }), "simulated");
  assert.equal(accountKind({ broker: "alpaca", live: true }), "alpaca · live");
  assert.equal(accountKind({ broker: "alpaca", live: false }), "alpaca · paper");
});
