/**
 * Reading one OHLCV bar from outside: the bar-close webhook's fields and a CSV row. Prices come
 * as numbers or numeric strings and leave as exact decimal strings; times as ISO 8601 or epoch
 * numbers; TradingView's `{{interval}}` values map to our timeframes.
 */
import { type Bar, type Timeframe, TIMEFRAMES } from "../db/bars.ts";

/** TradingView's `{{interval}}` values and ours, to our timeframes. */
const INTERVALS: Readonly<Record<string, Timeframe>> = {
  "1": "1m",
  "5": "5m",
  "15": "15m",
  "30": "30m",
  "60": "1h",
  "120": "2h",
  "240": "4h",
  "D": "1d",
  "1D": "1d",
  "W": "1w",
  "1W": "1w",
};

/** One problem with a bar's input, by field. */
export interface BarProblem {
  field: string;
  message: string;
}

/**
 * The timeframe of a TradingView interval ("1", "60", "D", "1D", "W") or one of ours ("1h");
 * null when it is neither.
 */
export function parseTimeframe(value: unknown): Timeframe | null {
  if (typeof value !== "string" && typeof value !== "number") return null;
  const text = String(value).trim();
  if ((TIMEFRAMES as readonly string[]).includes(text)) return text as Timeframe;
  return INTERVALS[text.toUpperCase()] ?? null;
}

const DECIMAL = /^\d{1,20}(\.\d{1,20})?$/;

/** A non-negative decimal string of a number or numeric string; null when it is not one. */
export function parseDecimal(value: unknown): string | null {
  let text: string;
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) return null;
    text = String(value);
    // Tiny or huge numbers print with an exponent; write them out.
    if (/e/i.test(text)) text = value.toFixed(20).replace(/\.?0+$/, "");
  } else if (typeof value === "string") {
    text = value.trim();
  } else {
    return null;
  }
  if (text.startsWith(".")) text = `0${text}`;
  return DECIMAL.test(text) ? text : null;
}

/** Compares two decimal strings from {@linkcode parseDecimal} exactly: -1, 0 or 1. */
export function compareDecimals(a: string, b: string): number {
  const [ai = "", af = ""] = a.split(".");
  const [bi = "", bf = ""] = b.split(".");
  const aInt = ai.replace(/^0+/, "");
  const bInt = bi.replace(/^0+/, "");
  if (aInt.length !== bInt.length) return aInt.length < bInt.length ? -1 : 1;
  if (aInt !== bInt) return aInt < bInt ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const aFrac = af.padEnd(width, "0");
  const bFrac = bf.padEnd(width, "0");
  return aFrac === bFrac ? 0 : aFrac < bFrac ? -1 : 1;
}

const ISO =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(2200, 0, 1);

/**
 * A bar's open time from ISO 8601 (a time of day needs a zone: `Z` or an offset; a date alone
 * is midnight UTC) or an epoch number in `unit`; null when it is neither.
 */
export function parseBarTime(value: unknown, unit: "ms" | "s"): Date | null {
  let ms: number;
  if (typeof value === "number" || (typeof value === "string" && /^\d+(\.\d+)?$/.test(value))) {
    ms = Number(value) * (unit === "s" ? 1000 : 1);
  } else if (typeof value === "string" && ISO.test(value.trim())) {
    ms = Date.parse(value.trim().replace(" ", "T"));
  } else {
    return null;
  }
  if (!Number.isFinite(ms) || ms < EARLIEST || ms >= LATEST) return null;
  return new Date(Math.floor(ms));
}

/** The raw fields of one bar. */
export interface BarFields {
  open?: unknown;
  high?: unknown;
  low?: unknown;
  close?: unknown;
  volume?: unknown;
  time?: unknown;
}

/** A bar, or the problems that keep it from being one. */
export type BarValidation = { ok: true; bar: Bar } | { ok: false; problems: BarProblem[] };

/**
 * Validates one bar: every field present and numeric (volume may be missing or "NaN": 0), a readable
 * time (`timeUnit` for epoch numbers), and consistent prices: high ≥ max(open, close, low) and
 * low ≤ min(open, close).
 */
export function validateBar(fields: BarFields, timeUnit: "ms" | "s"): BarValidation {
  const problems: BarProblem[] = [];
  const prices: Record<string, string> = {};
  for (const field of ["open", "high", "low", "close", "volume"] as const) {
    const raw = fields[field];
    // TradingView's {{volume}} is "NaN" on symbols without volume (forex, indices).
    if (field === "volume" && (raw === undefined || raw === null || raw === "" || raw === "NaN")) {
      prices[field] = "0";
      continue;
    }
    if (raw === undefined || raw === null || raw === "") {
      problems.push({ field, message: `"${field}" is required` });
      continue;
    }
    const value = parseDecimal(raw);
    if (value === null) {
      problems.push({ field, message: `"${field}" must be a non-negative number` });
    } else {
      prices[field] = value;
    }
  }
  const ts = parseBarTime(fields.time, timeUnit);
  if (ts === null) {
    problems.push({
      field: "time",
      message: fields.time === undefined || fields.time === ""
        ? '"time" is required'
        : `"time" must be ISO 8601 with a zone (2026-01-05T14:00:00Z) or epoch ${
          timeUnit === "s" ? "seconds" : "milliseconds"
        }`,
    });
  }
  const { open, high, low, close, volume } = prices;
  if (open && high && low && close) {
    if (compareDecimals(high, open) < 0 || compareDecimals(high, close) < 0) {
      problems.push({ field: "high", message: '"high" must be at least "open" and "close"' });
    }
    if (compareDecimals(low, open) > 0 || compareDecimals(low, close) > 0) {
      problems.push({ field: "low", message: '"low" must be at most "open" and "close"' });
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    bar: { ts: ts!, open: open!, high: high!, low: low!, close: close!, volume: volume! },
  };
}

/** The fields whose value is an unfilled TradingView placeholder like "{{close}}". */
export function unfilledPlaceholders(payload: Record<string, unknown>): BarProblem[] {
  const problems: BarProblem[] = [];
  for (const [field, value] of Object.entries(payload)) {
    if (typeof value === "string" && /\{\{[^}]*\}\}/.test(value)) {
      problems.push({
        field,
        message: `"${field}" is an unfilled TradingView placeholder "${value.slice(0, 64)}"`,
      });
    }
  }
  return problems;
}
