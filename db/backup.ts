/**
 * Logical backup and restore of the system of record, the same on PGlite and PostgreSQL.
 *
 * Backup reads every application table (all of schema `public` but `schema_migrations`, whose
 * rows the header carries instead) in one REPEATABLE READ, read-only transaction — one snapshot —
 * each in primary-key order, every column as PostgreSQL's text form (bytea as base64), so that
 * numerics, microsecond timestamps, jsonb, uuids and identity values round-trip exactly.
 *
 * Restore checks the whole file first, migrates the empty target to the backup's schema version,
 * then loads every row in one transaction: foreign keys are dropped and added back (validated)
 * around the load, identity columns are written as they were (OVERRIDING SYSTEM VALUE) and their
 * sequences moved past the restored ids, and every table is read back and compared with the
 * header's counts and checksums before the commit. Any failure rolls the whole load back.
 */
import type { Db, DbEngine, Queryable, Tx } from "./client.ts";
import { loadMigrations, migrateDown, migrateUp, type Migration } from "./migrate.ts";
import {
  BACKUP_FORMAT,
  BACKUP_FORMAT_VERSION,
  type BackupHeader,
  type BackupRow,
  type BackupTable,
  createBackupWriter,
  openBackup,
  rowLine,
  TableDigests,
  verifyBackup,
} from "../lib/backup_file.ts";

/** A column of an application table. */
export interface ColumnSpec {
  name: string;
  /** The SQL type, as `format_type` names it (`timestamp with time zone`, `numeric`, …). */
  type: string;
  /** Written as base64 rather than PostgreSQL's hex text. */
  bytea: boolean;
  /** Ordered with `COLLATE "C"`, so both engines sort it the same whatever their locale. */
  collatable: boolean;
  /** `a`: GENERATED ALWAYS AS IDENTITY, `d`: BY DEFAULT, empty: not an identity column. */
  identity: "" | "a" | "d";
}

/** An application table as the catalog describes it. */
export interface TableSpec {
  name: string;
  columns: ColumnSpec[];
  /** Primary key columns in key order; empty when the table has none. */
  primaryKey: string[];
}

/** The table that records migrations; backups carry its content in the header. */
const MIGRATIONS_TABLE = "schema_migrations";
/** Rows fetched from a cursor, or inserted, per statement. */
const BATCH_ROWS = 500;
const BATCH_BYTES = 1 << 20;

/** Quotes an identifier for SQL. */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The same text for every value on every server: UTC timestamps in ISO style, floats in their
 * shortest exact form. Runs inside a transaction (SET LOCAL).
 */
async function canonicalSession(tx: Queryable): Promise<void> {
  await tx.query("SET LOCAL TimeZone = 'UTC'");
  await tx.query("SET LOCAL DateStyle = 'ISO, MDY'");
  await tx.query("SET LOCAL IntervalStyle = 'postgres'");
  await tx.query("SET LOCAL extra_float_digits = 3");
}

/** Every application table of schema `public` (all but `schema_migrations`), by name. */
export async function describeTables(db: Queryable): Promise<TableSpec[]> {
  const rows = await db.query<{
    table: string;
    column: string;
    type: string;
    bytea: boolean;
    collatable: boolean;
    identity: string;
    pk: number | null;
  }>(
    `SELECT c.relname AS "table", a.attname AS "column",
            format_type(a.atttypid, a.atttypmod) AS type,
            a.atttypid = 'bytea'::regtype AS bytea,
            a.attcollation <> 0 AS collatable,
            a.attidentity::text AS identity,
            array_position(i.indkey::int2[], a.attnum) AS pk
     FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> $1
       AND a.attgenerated = ''
     ORDER BY c.relname COLLATE "C", a.attnum`,
    [MIGRATIONS_TABLE],
  );
  const tables = new Map<string, TableSpec & { pk: Array<[number, string]> }>();
  for (const row of rows) {
    let table = tables.get(row.table);
    if (!table) {
      tables.set(row.table, table = { name: row.table, columns: [], primaryKey: [], pk: [] });
    }
    table.columns.push({
      name: row.column,
      type: row.type,
      bytea: row.bytea,
      collatable: row.collatable,
      identity: (row.identity === "a" || row.identity === "d" ? row.identity : "") as
        | ""
        | "a"
        | "d",
    });
    if (row.pk !== null) table.pk.push([row.pk, row.column]);
  }
  return [...tables.values()].map(({ pk, ...table }) => ({
    ...table,
    primaryKey: pk.sort((a, b) => a[0] - b[0]).map(([, name]) => name),
  }));
}

/** `SELECT` of a table's rows as text values, in a deterministic order. */
function selectRows(table: TableSpec): string {
  const values = table.columns.map((c) =>
    c.bytea
      ? `translate(encode(${ident(c.name)}, 'base64'), E'\\n', '') AS ${ident(c.name)}`
      : `${ident(c.name)}::text AS ${ident(c.name)}`
  );
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const order = table.primaryKey.length > 0
    ? table.primaryKey.map((name) =>
      `${ident(name)}${byName.get(name)?.collatable ? ' COLLATE "C"' : ""}`
    )
    : table.columns.map((c) => `${ident(c.name)}::text COLLATE "C"`);
  return `SELECT ${values.join(", ")} FROM ${ident(table.name)} ORDER BY ${order.join(", ")}`;
}

/** Reads every row of `table` in order, in batches, through a cursor of the open transaction. */
async function* readTable(tx: Tx, table: TableSpec): AsyncGenerator<BackupRow[]> {
  const cursor = ident(`backup_${table.name}`);
  await tx.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${selectRows(table)}`);
  try {
    while (true) {
      const rows = await tx.query<BackupRow>(`FETCH ${BATCH_ROWS} FROM ${cursor}`);
      if (rows.length === 0) break;
      yield rows;
      if (rows.length < BATCH_ROWS) break;
    }
  } finally {
    await tx.query(`CLOSE ${cursor}`);
  }
}

/** The migrations applied, oldest first (none when the table does not exist). */
async function appliedMigrations(
  db: Queryable,
): Promise<Array<{ version: number; name: string; checksum: string }>> {
  const [exists] = await db.query<{ present: boolean }>(
    `SELECT to_regclass('public.${MIGRATIONS_TABLE}') IS NOT NULL AS present`,
  );
  if (!exists?.present) return [];
  return db.query(
    `SELECT version, name, checksum FROM ${MIGRATIONS_TABLE} ORDER BY version`,
  );
}

/** Options of {@linkcode writeBackup}. */
export interface WriteBackupOptions {
  /** The version of trendedge writing it (deno.json). */
  appVersion: string;
  /** When the backup is taken (default now). */
  now?: Date;
  /** Called after each table is read, for progress output. */
  onTable?: (table: string, rows: number) => void;
}

/** What {@linkcode writeBackup} wrote. */
export interface BackupResult {
  header: BackupHeader;
  /** Size of the compressed file. */
  bytes: number;
}

/**
 * Writes a consistent backup of every application table of `db` to `path` (which must not
 * exist): one snapshot, gzip-compressed JSON lines, a header with counts and checksums.
 */
export async function writeBackup(
  db: Db,
  path: string,
  options: WriteBackupOptions,
): Promise<BackupResult> {
  const writer = await createBackupWriter(path);
  try {
    const { migrations, tables } = await db.transaction(async (tx) => {
      await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      await canonicalSession(tx);
      await tx.query("SET LOCAL statement_timeout = 0");
      await tx.query("SET LOCAL lock_timeout = '60s'");
      const migrations = await appliedMigrations(tx);
      const tables = await describeTables(tx);
      if (tables.length === 0) {
        throw new Error(
          'Cannot back up: the database has no tables yet (run "deno task migrate up" first)',
        );
      }
      for (const table of tables) {
        let count = 0;
        for await (const rows of readTable(tx, table)) {
          for (const row of rows) await writer.write(table.name, table.columns, row);
          count += rows.length;
        }
        options.onTable?.(table.name, count);
      }
      return { migrations, tables };
    });
    return await writer.finish(
      {
        format: BACKUP_FORMAT,
        version: BACKUP_FORMAT_VERSION,
        created_at: (options.now ?? new Date()).toISOString(),
        app_version: options.appVersion,
        engine: db.engine,
        schema_version: migrations.at(-1)?.version ?? 0,
        migrations,
      },
      tables.map((t) => ({
        name: t.name,
        columns: t.columns.map((c) => ({ name: c.name, type: c.type })),
        primary_key: t.primaryKey,
      })),
    );
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** The target database cannot take this backup; nothing was written. */
export class RestoreRefusedError extends Error {
  override name = "RestoreRefusedError";
}

/** Options of {@linkcode restoreBackup}. */
export interface RestoreOptions {
  /** The code's migrations (default: db/migrations). */
  migrations?: Migration[];
  /** Called once per migration the target needed before the load. */
  onMigrate?: (step: { direction: "up" | "down"; version: number; name: string }) => void;
}

/** What {@linkcode restoreBackup} did. */
export interface RestoreResult {
  header: BackupHeader;
  /** Engine of the database restored into. */
  engine: DbEngine;
  /** Rows restored and verified per table, in header order. */
  tables: Array<{ name: string; rows: number }>;
  /** Identity sequences moved past the restored ids: `table.column` → next value. */
  sequences: Record<string, string>;
}

/**
 * Restores the backup at `path` into `db`, which must hold no application rows. Checks the whole
 * file before touching the database; throws {@linkcode BackupFileError} (lib/backup_file.ts) for
 * a bad file and {@linkcode RestoreRefusedError} for a target that cannot take it.
 */
export async function restoreBackup(
  db: Db,
  path: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const header = await verifyBackup(path);
  const code = options.migrations ?? await loadMigrations();
  const wanted = planMigrations(header, code);

  // Refuse before any change: a database with rows is never a restore target.
  const applied = await appliedMigrations(db);
  const unknown = applied.filter((m) => !code.some((c) => c.version === m.version));
  if (unknown.length > 0) {
    throw new RestoreRefusedError(
      `Cannot restore: the database has migration(s) ${
        unknown.map((m) => m.version).join(", ")
      } that this release does not know`,
    );
  }
  await assertEmpty(db, await describeTables(db));

  // Bring the empty schema to exactly the backup's version.
  const target = header.schema_version;
  const onStep = (s: { direction: "up" | "down"; version: number; name: string }) =>
    options.onMigrate?.(s);
  const newest = applied.at(-1)?.version ?? 0;
  if (newest > target) {
    const steps = applied.filter((m) => m.version > target).length;
    await migrateDown(db, steps, { migrations: code, onStep });
  }
  await migrateUp(db, { migrations: wanted, onStep });
  const now = await appliedMigrations(db);
  if (
    now.length !== header.migrations.length ||
    now.some((m, i) => m.version !== header.migrations[i]!.version)
  ) {
    throw new RestoreRefusedError(
      `Cannot restore: the database's migrations (${
        now.map((m) => m.version).join(", ") || "none"
      }) differ from the backup's (${
        header.migrations.map((m) => m.version).join(", ") || "none"
      })`,
    );
  }

  return await db.transaction(async (tx) => {
    await canonicalSession(tx);
    await tx.query("SET LOCAL statement_timeout = 0");
    await tx.query("SET LOCAL lock_timeout = '60s'");
    const tables = await describeTables(tx);
    const specs = matchTables(header, tables);
    if (tables.length > 0) {
      await tx.query(
        `LOCK TABLE ${tables.map((t) => ident(t.name)).join(", ")} IN ACCESS EXCLUSIVE MODE`,
      );
    }
    await assertEmpty(tx, tables);

    // Foreign keys come back (and are validated) once every row is in: rows can then come in
    // any order, self-references included, without superuser rights.
    const foreignKeys = await tx.query<{ table: string; name: string; definition: string }>(
      `SELECT cl.relname AS "table", co.conname AS name, pg_get_constraintdef(co.oid) AS definition
       FROM pg_constraint co
       JOIN pg_class cl ON cl.oid = co.conrelid
       JOIN pg_namespace n ON n.oid = cl.relnamespace
       WHERE co.contype = 'f' AND n.nspname = 'public'
       ORDER BY cl.relname, co.conname`,
    );
    for (const fk of foreignKeys) {
      await tx.query(`ALTER TABLE ${ident(fk.table)} DROP CONSTRAINT ${ident(fk.name)}`);
    }

    let batch: BackupRow[] = [];
    let batchBytes = 0;
    let batchTable: TableSpec | undefined;
    const flush = async () => {
      if (batchTable && batch.length > 0) await insertRows(tx, batchTable, batch);
      batch = [];
      batchBytes = 0;
    };
    const reader = await openBackup(path);
    try {
      for await (const { table, row } of reader.rows()) {
        const spec = specs.get(table.name)!;
        if (spec !== batchTable) {
          await flush();
          batchTable = spec;
        }
        batch.push(row);
        for (const value of Object.values(row)) batchBytes += value?.length ?? 4;
        if (batch.length >= BATCH_ROWS || batchBytes >= BATCH_BYTES) await flush();
      }
      await flush();
    } finally {
      await reader.close();
    }

    for (const fk of foreignKeys) {
      try {
        await tx.query(
          `ALTER TABLE ${ident(fk.table)} ADD CONSTRAINT ${ident(fk.name)} ${fk.definition}`,
        );
      } catch (error) {
        throw new Error(
          `Cannot restore: the rows break foreign key "${fk.name}" of "${fk.table}": ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
    }

    const sequences = await resetSequences(tx, tables);

    // Read everything back, in the backup's own form, and compare with the header.
    const restored: Array<{ name: string; rows: number }> = [];
    for (const expected of header.tables) {
      const spec = specs.get(expected.name)!;
      const digests = new TableDigests();
      for await (const rows of readTable(tx, spec)) {
        for (const row of rows) {
          digests.add(spec.name, rowLine(spec.name, expected.columns, row));
        }
      }
      const got = digests.result(spec.name);
      if (got.rows !== expected.rows || got.sha256 !== expected.sha256) {
        throw new Error(
          `Cannot restore: table "${expected.name}" reads back ${got.rows} row(s) that differ from the backup's ${expected.rows}; nothing was restored`,
        );
      }
      restored.push({ name: expected.name, rows: got.rows });
    }
    return { header, engine: db.engine, tables: restored, sequences };
  });
}

/**
 * The code's migrations up to the backup's schema version, after checking that the backup's
 * migrations are exactly those (same versions, same checksums).
 */
function planMigrations(header: BackupHeader, code: Migration[]): Migration[] {
  const latest = code.at(-1)?.version ?? 0;
  if (header.schema_version > latest) {
    throw new RestoreRefusedError(
      `Cannot restore: the backup's schema is version ${header.schema_version}, newer than this release's migrations (up to ${latest}); restore with the release that wrote it`,
    );
  }
  const wanted = code.filter((m) => m.version <= header.schema_version);
  const theirs = new Map(header.migrations.map((m) => [m.version, m]));
  for (const m of wanted) {
    const other = theirs.get(m.version);
    if (!other) {
      throw new RestoreRefusedError(
        `Cannot restore: the backup's schema lacks migration ${m.version} "${m.name}", which this release applies before version ${header.schema_version}`,
      );
    }
    if (other.checksum !== m.checksum) {
      throw new RestoreRefusedError(
        `Cannot restore: migration ${m.version} "${m.name}" differs between the backup and this release (checksum)`,
      );
    }
    theirs.delete(m.version);
  }
  if (theirs.size > 0) {
    throw new RestoreRefusedError(
      `Cannot restore: the backup has migration(s) ${
        [...theirs.keys()].join(", ")
      } that this release does not know`,
    );
  }
  return wanted;
}

/** The target's tables by name, after checking they are exactly the backup's, column for column. */
function matchTables(header: BackupHeader, tables: TableSpec[]): Map<string, TableSpec> {
  const byName = new Map(tables.map((t) => [t.name, t]));
  for (const expected of header.tables) {
    const table = byName.get(expected.name);
    if (!table) {
      throw new RestoreRefusedError(
        `Cannot restore: table "${expected.name}" of the backup does not exist in the database`,
      );
    }
    const theirs = expected.columns.map((c) => c.name).sort().join(", ");
    const ours = table.columns.map((c) => c.name).sort().join(", ");
    if (theirs !== ours) {
      throw new RestoreRefusedError(
        `Cannot restore: the columns of "${expected.name}" differ (backup: ${theirs}; database: ${ours})`,
      );
    }
  }
  const extra = tables.filter((t) => !header.tables.some((e) => e.name === t.name));
  if (extra.length > 0) {
    throw new RestoreRefusedError(
      `Cannot restore: the database has table(s) the backup does not: ${
        extra.map((t) => t.name).join(", ")
      }`,
    );
  }
  return byName;
}

/** Throws {@linkcode RestoreRefusedError} naming every application table that has rows. */
async function assertEmpty(db: Queryable, tables: TableSpec[]): Promise<void> {
  if (tables.length === 0) return;
  const rows = await db.query<{ name: string }>(
    tables.map((t, i) =>
      `SELECT $${i + 1}::text AS name WHERE EXISTS (SELECT 1 FROM ${ident(t.name)})`
    ).join(" UNION ALL "),
    tables.map((t) => t.name),
  );
  if (rows.length > 0) {
    throw new RestoreRefusedError(
      `Cannot restore into a database that has data: ${rows.map((r) => r.name).join(", ")} ha${
        rows.length === 1 ? "s" : "ve"
      } rows; restore into an empty database`,
    );
  }
}

/** Inserts rows of one table, casting each text value back to its column's type. */
async function insertRows(tx: Tx, table: TableSpec, rows: BackupRow[]): Promise<void> {
  const columns = table.columns.map((c) => ident(c.name)).join(", ");
  const values = table.columns.map((c) => {
    const text = `(r ->> ${sqlString(c.name)})`;
    return c.bytea ? `decode(${text}, 'base64')` : `${text}::${c.type}`;
  }).join(", ");
  const overriding = table.columns.some((c) => c.identity === "a")
    ? " OVERRIDING SYSTEM VALUE"
    : "";
  await tx.query(
    `INSERT INTO ${ident(table.name)} (${columns})${overriding}
     SELECT ${values} FROM json_array_elements($1::text::json) AS r`,
    [JSON.stringify(rows)],
  );
}

/** Moves every identity or serial sequence past the largest restored value. */
async function resetSequences(tx: Tx, tables: TableSpec[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of tables) {
    for (const column of table.columns) {
      const [seq] = await tx.query<{ name: string | null }>(
        "SELECT pg_get_serial_sequence($1, $2) AS name",
        [ident(table.name), column.name],
      );
      if (!seq?.name) continue;
      // In SQL, as text: a bigint past 2^53 would lose digits as a JavaScript number.
      const [next] = await tx.query<{ next: string }>(
        `SELECT setval($1::regclass, coalesce(max(${
          ident(column.name)
        }), 0) + 1, false)::text AS next
         FROM ${ident(table.name)}`,
        [seq.name],
      );
      out[`${table.name}.${column.name}`] = next!.next;
    }
  }
  return out;
}

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

export { BackupFileError } from "../lib/backup_file.ts";
export type { BackupHeader, BackupTable };
