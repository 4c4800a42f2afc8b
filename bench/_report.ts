/** Human-readable bench output: lines on stdout (no console: lint has `no-console`) and tables. */

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

/** Formats a fraction of one core as a percentage. */
export function percent(value: number): string {
  return Number.isFinite(value) ? `${Math.round(value * 100)}%` : "–";
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
