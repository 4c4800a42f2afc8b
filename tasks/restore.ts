/**
 * `deno task restore --in FILE` — restores a backup written by `deno task backup` into the
 * configured database, which must be empty (a fresh DATA_DIR, a new PostgreSQL database, or one
 * only migrated). The whole file is checked first; the rows then load in one transaction and are
 * read back and compared with the backup's counts and checksums before it commits.
 */
import { BackupFileError, restoreBackup, RestoreRefusedError } from "../db/backup.ts";
import { loadMigrations } from "../db/migrate.ts";
import { describeDatabase, openOperatorDb } from "../db/open.ts";
import { fail, parseFlags, print } from "../lib/cli.ts";

const USAGE = "Usage: deno task restore --in <backup file>";
const NO_DEADLINE_MS = 24 * 3_600_000;

async function main(args: string[]) {
  const values = parseFlags(args, { in: {} }, USAGE);
  const file = values.in;
  if (!file) fail(USAGE, 64);
  try {
    if (!(await Deno.stat(file)).isFile) fail(`Cannot restore: "${file}" is not a file`, 66);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) fail(`Cannot restore: "${file}" does not exist`, 66);
    throw error;
  }

  const migrations = await loadMigrations();
  const { config, db } = await openOperatorDb({ transactionTimeoutMs: NO_DEADLINE_MS });
  const started = performance.now();
  print(`Restoring ${file} into ${describeDatabase(config)}`);
  let outcome: Awaited<ReturnType<typeof restoreBackup>> | Error;
  try {
    outcome = await restoreBackup(db, file, {
      migrations,
      onMigrate: (s) =>
        print(
          `  ${s.direction === "up" ? "applied " : "reverted"} migration ${
            String(s.version).padStart(4, "0")
          } ${s.name}`,
        ),
    });
  } catch (error) {
    outcome = error as Error;
  } finally {
    await db.close();
  }
  if (outcome instanceof Error) {
    const message = outcome.message.startsWith("Cannot")
      ? outcome.message
      : `Cannot restore: ${outcome.message}`;
    if (outcome instanceof BackupFileError) fail(`${message}\nNothing was restored.`, 65);
    if (outcome instanceof RestoreRefusedError) fail(`${message}\nNothing was restored.`, 1);
    fail(`${message}\nNothing was restored (the load was rolled back).`, 1);
  }
  const { header, tables, sequences } = outcome;
  print(
    `Backup of ${header.created_at} (trendedge ${header.app_version}, ${header.engine}, schema version ${header.schema_version})`,
  );
  for (const table of tables) {
    print(`  ${table.name.padEnd(24)} ${String(table.rows).padStart(9)} rows  verified`);
  }
  for (const [column, next] of Object.entries(sequences)) {
    print(`  ${column} continues at ${next}`);
  }
  const rows = tables.reduce((sum, t) => sum + t.rows, 0);
  print(
    `Done: ${rows} rows in ${tables.length} tables restored; counts and checksums match the backup (${
      Math.round(performance.now() - started)
    } ms)`,
  );
  const latest = migrations.at(-1)?.version ?? 0;
  if (header.schema_version < latest) {
    print(
      `The schema is at version ${header.schema_version}; run "deno task migrate up" to bring it to ${latest}.`,
    );
  }
}

if (import.meta.main) await main(Deno.args);
