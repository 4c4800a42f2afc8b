/** Human-readable bench output: lines on stdout (no console: lint has `no-console`) and tables. */

import type { OpenLoopResult } from "./_load.ts";

const encoder = new TextEncoder();

/** Writes `text` and a newline to stdout, all of it, synchronously. */
export function writeLine(text = ""): void {
  let bytes = encoder.encode(text + "\n");
  while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
}

/** Formats milliseconds with 2 significant decimals below 10, 1 below 100, none above. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return value.toFixed(0);
}

/** Formats a rate (requests per second) as an integer with thousands separators. */
export function rate(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "–";
}

/** Formats a ratio as `×1.23`. */
export function ratio(value: number): string {
  return Number.isFinite(value) ? `×${value.toFixed(2)}` : "–";
}

/** Formats a fraction of one core as a percentage ("–" when unknown). */
export function percent(value: number | undefined): string {
  return value !== undefined && Number.isFinite(value) ? `${Math.round(value * 100)}%` : "–";
}

/** The median of the finite values (NaN when there are none). */
export function median(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return NaN;
  const sorted = finite.toSorted((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The leading columns every latency table shares, over repeated runs at one rate: label, rate,
 * answered/scheduled in total, median p50, p90 and p99, the p99 range, and the worst max.
 */
export function latencyColumns(label: string, target: number, results: OpenLoopResult[]): string[] {
  const of = (f: (r: OpenLoopResult) => number) => results.map(f);
  const p99s = of((r) => r.latencyMs.p99);
  return [
    label,
    rate(target),
    `${of((r) => r.ok).reduce((a, b) => a + b)}/${of((r) => r.scheduled).reduce((a, b) => a + b)}`,
    ms(median(of((r) => r.latencyMs.p50))),
    ms(median(of((r) => r.latencyMs.p90))),
    ms(median(p99s)),
    `${ms(Math.min(...p99s))}–${ms(Math.max(...p99s))}`,
    ms(Math.max(...of((r) => r.latencyMs.max))),
  ];
}

/**
 * Writes a table: the first column left-aligned, the others right-aligned, two spaces apart,
 * indented by two spaces.
 */
export function writeTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const format = (cells: string[]) =>
    "  " + cells.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))
      .join("  ").trimEnd();
  writeLine(format(header));
  writeLine("  " + widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of rows) writeLine(format(row));
}
