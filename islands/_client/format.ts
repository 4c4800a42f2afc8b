/**
 * Formatting shared by the server render and the islands, so the first paint and every live
 * update read the same: times in the viewer's time zone (the browser's; the server renders with
 * the zone the browser reported in the `te_tz` cookie, else UTC), money and quantities.
 */

/** The zone times are shown in: the browser's own, or `fallback` where there is no browser. */
export function viewerTimeZone(fallback = "UTC"): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || fallback;
  } catch {
    return fallback;
  }
}

/** True for a zone name Intl knows. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** `2026-11-22 14:03:07` in `zone`; an empty string for no time. */
export function formatTime(iso: string | null | undefined, zone: string): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")}:${
    get("second")
  }`;
}

/** A decimal string or number as money, `-1,234.50`; an em dash for none. */
export function formatMoney(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

/**
 * A quantity or price without trailing zeros (`0.5`, `187.25`): 4 decimals at most from 1 up
 * (a fill at 53.984601 reads 53.9846), 8 below 1 (crypto quantities such as 0.00012); an em dash
 * for none.
 */
export function formatNumber(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString("en-US", { maximumFractionDigits: Math.abs(n) >= 1 ? 4 : 8 });
}

/** Milliseconds between two times, `"42 ms"` / `"1.3 s"`; empty when either is missing. */
export function formatLatency(from: string | null | undefined, to: string | null | undefined) {
  if (!from || !to) return "";
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (!Number.isFinite(ms) || ms < 0) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** How a broker account trades, in a word or two: "simulated", "alpaca · live", "alpaca · paper". */
export function accountKind(account: { broker: string; live: boolean }): string {
  return account.broker === "paper"
    ? "simulated"
    : `${account.broker} · ${account.live ? "live" : "paper"}`;
}

/** The CSS class of a profit or loss. */
export function pnlClass(value: string | number | null | undefined): string {
  const n = Number(value);
  return !Number.isFinite(n) || n === 0 ? "" : n > 0 ? "up" : "down";
}
