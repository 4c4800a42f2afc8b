/**
 * Bars from a CSV file, streamed: a header (`time,open,high,low,close,volume`, TradingView's
 * export `time,open,high,low,close,Volume`, extra columns ignored), then one bar a line. Times
 * are epoch seconds or ISO 8601. Bad rows are reported with their line number, not fatal.
 */
import type { Bar } from "../db/bars.ts";
import { type BarProblem, validateBar } from "./bar_input.ts";

/** The columns a bar CSV must have (volume may be missing: 0). */
export const REQUIRED_COLUMNS = ["time", "open", "high", "low", "close"] as const;

/** One row read: a bar, or why its line was skipped. */
export type CsvBarRow =
  | { line: number; bar: Bar }
  | { line: number; problems: BarProblem[] };

/** The file cannot be read as bars at all (no header, missing columns). */
export class CsvHeaderError extends Error {
  override name = "CsvHeaderError";
}

/** Splits a text stream into lines, without holding more than one line. */
async function* lines(text: AsyncIterable<string>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of text) {
    rest += chunk;
    let start = 0;
    for (let end = rest.indexOf("\n"); end >= 0; end = rest.indexOf("\n", start)) {
      yield rest.slice(start, end).replace(/\r$/, "");
      start = end + 1;
    }
    rest = rest.slice(start);
  }
  if (rest !== "") yield rest.replace(/\r$/, "");
}

function cells(line: string): string[] {
  return line.split(",").map((cell) => cell.trim().replace(/^"(.*)"$/, "$1").trim());
}

/**
 * Reads bars from CSV `text`, one row at a time; throws {@linkcode CsvHeaderError} when the
 * first line is not a usable header. Blank lines are ignored.
 */
export async function* readCsvBars(text: AsyncIterable<string>): AsyncGenerator<CsvBarRow> {
  let columns: Map<string, number> | null = null;
  let number = 0;
  for await (const raw of lines(text)) {
    number++;
    const line = number === 1 ? raw.replace(/^\uFEFF/, "") : raw;
    if (line.trim() === "") continue;
    const row = cells(line);
    if (columns === null) {
      columns = new Map(row.map((name, i) => [name.toLowerCase(), i]));
      const missing = REQUIRED_COLUMNS.filter((c) => !columns!.has(c));
      if (missing.length > 0) {
        throw new CsvHeaderError(
          `Cannot read the CSV: line ${number} must be a header with ${
            REQUIRED_COLUMNS.join(",")
          },volume; missing ${missing.join(", ")}`,
        );
      }
      continue;
    }
    const at = (name: string) => {
      const i = columns!.get(name);
      return i === undefined ? undefined : row[i];
    };
    const result = validateBar({
      time: at("time"),
      open: at("open"),
      high: at("high"),
      low: at("low"),
      close: at("close"),
      volume: at("volume"),
    }, "s");
    yield result.ok
      ? { line: number, bar: result.bar }
      : { line: number, problems: result.problems };
  }
  if (columns === null) throw new CsvHeaderError("Cannot read the CSV: the file is empty");
}
