/**
 * `deno task bars:import --email E --symbol S --timeframe T FILE.csv` — imports a CSV of bars
 * (`time,open,high,low,close,volume`, or TradingView's export) for a user, streaming it in
 * batches. Idempotent: importing a file again updates the same rows. Prints rows read, stored
 * and skipped, with the line numbers of the first bad rows. Exits 64 on bad arguments, 65 when
 * no row is valid, 66 when the file cannot be opened.
 */
import { parseArgs } from "node:util";
import { type Bar, upsertBars } from "../db/bars.ts";
import { migrateUp } from "../db/migrate.ts";
import { openOperatorDb } from "../db/open.ts";
import { findUserByEmail } from "../db/users.ts";
import { parseTimeframe } from "../lib/bar_input.ts";
import { fail, print } from "../lib/cli.ts";
import { CsvHeaderError, readCsvBars } from "../lib/csv_bars.ts";
import { mapSymbol, SymbolError } from "../lib/symbols.ts";

const USAGE =
  "Usage: deno task bars:import --email <email> --symbol <symbol> --timeframe <1m|5m|15m|30m|1h|2h|4h|1d|1w> FILE.csv";
const BATCH = 5_000;
const SHOWN_PROBLEMS = 10;

async function main(args: string[]) {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: {
        email: { type: "string" },
        symbol: { type: "string" },
        timeframe: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (error) {
    fail(`${(error as Error).message}\n${USAGE}`, 64);
  }
  if (values.help) {
    print(USAGE);
    Deno.exit(0);
  }
  const { email, symbol: ticker, timeframe: tf } = values as Record<string, string | undefined>;
  if (!email || !ticker || !tf || positionals.length !== 1) fail(USAGE, 64);
  const timeframe = parseTimeframe(tf);
  if (timeframe === null) {
    fail(`Cannot import bars: "--timeframe" "${tf}" is unknown\n${USAGE}`, 64);
  }
  let symbol: string;
  try {
    symbol = mapSymbol(ticker, { broker: "paper", now: new Date() }).symbol;
  } catch (error) {
    if (error instanceof SymbolError) fail(`Cannot import bars: ${error.message}`, 64);
    throw error;
  }
  const path = positionals[0]!;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    fail(`Cannot import bars: cannot open "${path}": ${(error as Error).message}`, 66);
  }

  const { db } = await openOperatorDb();
  let read = 0, stored = 0, skipped = 0;
  const problems: string[] = [];
  let failure: { message: string; code: number } | null = null;
  try {
    await migrateUp(db);
    const user = await findUserByEmail(db, email);
    if (!user) {
      failure = { message: `Cannot import bars: no user has the email "${email.trim()}"`, code: 1 };
    } else {
      const key = { userId: user.id, symbol, timeframe, source: "csv" as const };
      let batch: Bar[] = [];
      const text = file.readable.pipeThrough(new TextDecoderStream());
      for await (const row of readCsvBars(text)) {
        read++;
        if ("bar" in row) {
          batch.push(row.bar);
          if (batch.length >= BATCH) {
            stored += await upsertBars(db, key, batch);
            batch = [];
          }
        } else {
          skipped++;
          if (problems.length < SHOWN_PROBLEMS) {
            problems.push(`  line ${row.line}: ${row.problems.map((p) => p.message).join("; ")}`);
          }
        }
      }
      if (batch.length > 0) stored += await upsertBars(db, key, batch);
    }
  } catch (error) {
    failure = error instanceof CsvHeaderError
      ? { message: error.message, code: 65 }
      : { message: `Cannot import bars: ${(error as Error).message}`, code: 1 };
  } finally {
    await db.close();
  }
  if (failure) fail(failure.message, failure.code);
  print(
    `Read ${read} rows of "${path}" for ${symbol} ${timeframe}: stored ${stored}, skipped ${skipped}`,
  );
  if (skipped > 0) {
    print(`Skipped lines${skipped > problems.length ? ` (first ${problems.length})` : ""}:`);
    for (const line of problems) print(line);
  }
  if (stored === 0) fail("Cannot import bars: the file has no valid rows", 65);
}

if (import.meta.main) await main(Deno.args);
