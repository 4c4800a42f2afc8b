/**
 * `deno task backup [--out FILE]` — writes a consistent, gzip-compressed logical backup of the
 * database (DATABASE_URL, or the embedded one under DATA_DIR) to FILE, by default
 * `backup-<UTC time>.jsonl.gz` in the working directory. One snapshot of every table, with row
 * counts and checksums in the header; `deno task restore --in FILE` puts it back.
 */
import { VERSION } from "../config.ts";
import { writeBackup } from "../db/backup.ts";
import { describeDatabase, openOperatorDb } from "../db/open.ts";
import { fail, parseFlags, print } from "../lib/cli.ts";

const USAGE = "Usage: deno task backup [--out <file, default backup-<UTC time>.jsonl.gz>]";
// A backup is one read-only snapshot; let it take as long as the data needs.
const NO_DEADLINE_MS = 24 * 3_600_000;

/** `backup-2024-05-01T12-00-00Z.jsonl.gz`: sortable, and no colons for other file systems. */
function defaultName(now: Date): string {
  return `backup-${now.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-")}.jsonl.gz`;
}

async function main(args: string[]) {
  const values = parseFlags(args, { out: {} }, USAGE);
  const now = new Date();
  const out = values.out ?? defaultName(now);
  if (out.trim() === "") fail(`Cannot back up: "--out" is empty\n${USAGE}`, 64);

  const { config, db } = await openOperatorDb({ transactionTimeoutMs: NO_DEADLINE_MS });
  const started = performance.now();
  print(`Backing up ${describeDatabase(config)} to ${out}`);
  let outcome: Awaited<ReturnType<typeof writeBackup>> | Error;
  try {
    outcome = await writeBackup(db, out, {
      appVersion: VERSION,
      now,
      onTable: (table, rows) => print(`  ${table.padEnd(24)} ${String(rows).padStart(9)} rows`),
    });
  } catch (error) {
    outcome = error as Error;
  } finally {
    await db.close();
  }
  if (outcome instanceof Error) {
    const message = outcome.message.startsWith("Cannot")
      ? outcome.message
      : `Cannot back up: ${outcome.message}`;
    fail(message, 1);
  }
  const { header, bytes } = outcome;
  const rows = header.tables.reduce((sum, t) => sum + t.rows, 0);
  print(
    `Done: ${rows} rows in ${header.tables.length} tables, schema version ${header.schema_version}, ${
      formatBytes(bytes)
    }, ${Math.round(performance.now() - started)} ms`,
  );
  print(out);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

if (import.meta.main) await main(Deno.args);
