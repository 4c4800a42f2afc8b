/**
 * The backup file: gzip-compressed JSON lines. The first line is a header (format, versions,
 * migrations, and for every table its columns, row count and SHA-256); then one line per row,
 * `{"t": table, "r": {column: text or null}}`, each table's rows in primary-key order. Values are
 * PostgreSQL's own text form (bytea as base64), so every type round-trips exactly.
 */
import { createHash, type Hash } from "node:crypto";
import { dirname } from "node:path";
import { z } from "zod";

/** The `format` of the header. */
export const BACKUP_FORMAT = "trendedge-backup";
/** The version of the file layout this code writes and reads. */
export const BACKUP_FORMAT_VERSION = 1;

/** One column: its name and SQL type, as `format_type` names it. */
export interface BackupColumn {
  name: string;
  type: string;
}

/** What the header says of one table. */
export interface BackupTable {
  name: string;
  columns: BackupColumn[];
  primary_key: string[];
  rows: number;
  /** SHA-256 (hex) of the table's row lines, each followed by a newline, in file order. */
  sha256: string;
}

/** A migration that was applied to the database backed up. */
export interface BackupMigration {
  version: number;
  name: string;
  checksum: string;
}

/** The first line of a backup. */
export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  created_at: string;
  app_version: string;
  engine: "pglite" | "postgres";
  /** The newest migration applied when the backup was taken (0: none). */
  schema_version: number;
  migrations: BackupMigration[];
  tables: BackupTable[];
}

/** A row: column name → PostgreSQL text value (bytea as base64) or null. */
export type BackupRow = Record<string, string | null>;

/** The backup file is unreadable, truncated, corrupted or not a backup. */
export class BackupFileError extends Error {
  override name = "BackupFileError";
}

const HeaderSchema = z.object({
  format: z.literal(BACKUP_FORMAT),
  version: z.number().int(),
  created_at: z.string(),
  app_version: z.string(),
  engine: z.enum(["pglite", "postgres"]),
  schema_version: z.number().int().min(0),
  migrations: z.array(
    z.object({ version: z.number().int().min(1), name: z.string(), checksum: z.string() }),
  ),
  tables: z.array(z.object({
    name: z.string().min(1),
    columns: z.array(z.object({ name: z.string().min(1), type: z.string().min(1) })).min(1),
    primary_key: z.array(z.string()),
    rows: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })),
});

/** The line of a row, as written and as hashed (columns in the header's order). */
export function rowLine(table: string, columns: readonly BackupColumn[], row: BackupRow): string {
  const r: BackupRow = {};
  for (const column of columns) r[column.name] = row[column.name] ?? null;
  return JSON.stringify({ t: table, r });
}

/** Counts and hashes the rows of each table in the order they come. */
export class TableDigests {
  #digests = new Map<string, { rows: number; hash: Hash }>();

  /** Adds one row line of `table`. */
  add(table: string, line: string): void {
    let digest = this.#digests.get(table);
    if (!digest) this.#digests.set(table, digest = { rows: 0, hash: createHash("sha256") });
    digest.rows++;
    digest.hash.update(line + "\n");
  }

  /** The row count and SHA-256 of `table` (an empty table's hash is that of no bytes). */
  result(table: string): { rows: number; sha256: string } {
    const digest = this.#digests.get(table);
    this.#digests.delete(table);
    return {
      rows: digest?.rows ?? 0,
      sha256: (digest?.hash ?? createHash("sha256")).digest("hex"),
    };
  }
}

/** Writes a backup file; rows first go to a temporary file, since the header needs their digests. */
export interface BackupWriter {
  /** Appends a row of `table`; a table's rows must come together and in order. */
  write(table: string, columns: readonly BackupColumn[], row: BackupRow): Promise<void>;
  /**
   * Writes the file (header with every table's count and checksum, then the rows), syncs it and
   * moves it into place. Returns the header and the size of the file in bytes.
   */
  finish(
    header: Omit<BackupHeader, "tables">,
    tables: Omit<BackupTable, "rows" | "sha256">[],
  ): Promise<{ header: BackupHeader; bytes: number }>;
  /** Removes the temporary files (after a failure); the target path is left untouched. */
  abort(): Promise<void>;
}

const FLUSH_BYTES = 1 << 20;

/**
 * Starts a backup at `path`, refusing to overwrite an existing file. Nothing appears at `path`
 * until {@linkcode BackupWriter.finish} succeeds.
 */
export async function createBackupWriter(path: string): Promise<BackupWriter> {
  try {
    await Deno.lstat(path);
    throw new BackupFileError(`Cannot write backup "${path}": the file exists already`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const rowsPath = await Deno.makeTempFile({ dir: dirname(path), prefix: ".backup-rows-" });
  const rows = await Deno.open(rowsPath, { write: true, truncate: true });
  const partial = `${path}.partial`;
  const digests = new TableDigests();
  const encoder = new TextEncoder();
  let pending: string[] = [];
  let pendingBytes = 0;
  let closed = false;

  const flush = async () => {
    if (pending.length === 0) return;
    const bytes = encoder.encode(pending.join(""));
    pending = [];
    pendingBytes = 0;
    for (let off = 0; off < bytes.length;) off += await rows.write(bytes.subarray(off));
  };
  const cleanup = async () => {
    if (!closed) {
      closed = true;
      rows.close();
    }
    await Deno.remove(rowsPath).catch(() => {});
    await Deno.remove(partial).catch(() => {});
  };

  return {
    async write(table, columns, row) {
      const line = rowLine(table, columns, row);
      digests.add(table, line);
      pending.push(line, "\n");
      pendingBytes += line.length + 1;
      if (pendingBytes >= FLUSH_BYTES) await flush();
    },
    async finish(base, specs) {
      try {
        await flush();
        await rows.sync();
        rows.close();
        closed = true;
        const header: BackupHeader = {
          ...base,
          tables: specs.map((spec) => ({ ...spec, ...digests.result(spec.name) })),
        };
        const headerBytes = encoder.encode(JSON.stringify(header) + "\n");
        const body = await Deno.open(rowsPath, { read: true });
        const source = new ReadableStream<BufferSource>({
          start(controller) {
            controller.enqueue(headerBytes);
          },
          async pull(controller) {
            const buffer = new Uint8Array(FLUSH_BYTES);
            const n = await body.read(buffer);
            if (n === null) {
              body.close();
              controller.close();
            } else controller.enqueue(buffer.subarray(0, n));
          },
          cancel() {
            body.close();
          },
        });
        // Password hashes and sealed credentials: readable by the owner only.
        const out = await Deno.open(partial, { write: true, createNew: true, mode: 0o600 });
        let bytes = 0;
        try {
          for await (const chunk of source.pipeThrough(new CompressionStream("gzip"))) {
            for (let off = 0; off < chunk.length;) off += await out.write(chunk.subarray(off));
            bytes += chunk.length;
          }
          await out.sync();
        } finally {
          out.close();
        }
        await Deno.rename(partial, path);
        await Deno.remove(rowsPath).catch(() => {});
        return { header, bytes };
      } catch (error) {
        await cleanup();
        throw error;
      }
    },
    abort: cleanup,
  };
}

/** An open backup: its header, and its rows, checked as they are read. */
export interface BackupReader {
  header: BackupHeader;
  /**
   * Every row in file order. Throws {@linkcode BackupFileError} on a malformed line, a row that
   * does not fit the header, or — after the last line — a count or checksum that differs.
   */
  rows(): AsyncGenerator<{ table: BackupTable; row: BackupRow }>;
  /** Closes the file (also done when `rows()` ends or throws). */
  close(): Promise<void>;
}

/** Opens a backup file and reads its header. */
export async function openBackup(path: string): Promise<BackupReader> {
  const lines = readLines(path);
  let header: BackupHeader;
  try {
    const first = await lines.next();
    if (first.done) throw new BackupFileError(`Cannot read backup "${path}": the file is empty`);
    header = parseHeader(path, first.value);
  } catch (error) {
    await lines.return(undefined);
    throw error;
  }
  let used = false;
  return {
    header,
    async close() {
      await lines.return(undefined);
    },
    async *rows() {
      if (used) throw new Error(`Cannot read backup "${path}" twice: open it again`);
      used = true;
      const tables = new Map(header.tables.map((t) => [t.name, t]));
      const digests = new TableDigests();
      const checked = new Set<string>();
      let current: string | undefined;
      let n = 1;
      try {
        for await (const line of lines) {
          n++;
          if (line === "") continue;
          const bad = (why: string) =>
            new BackupFileError(`Cannot read backup "${path}": line ${n}: ${why}`);
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            throw bad("not JSON");
          }
          const { t, r } = (parsed ?? {}) as { t?: unknown; r?: unknown };
          const table = typeof t === "string" ? tables.get(t) : undefined;
          if (!table) throw bad(`unknown table ${JSON.stringify(t)}`);
          if (!r || typeof r !== "object" || Array.isArray(r)) {
            throw bad("the row is not an object");
          }
          const row = r as Record<string, unknown>;
          const keys = Object.keys(row);
          if (
            keys.length !== table.columns.length ||
            table.columns.some((c) => !Object.hasOwn(row, c.name))
          ) {
            throw bad(`the row's columns differ from those of "${table.name}" in the header`);
          }
          if (keys.some((k) => row[k] !== null && typeof row[k] !== "string")) {
            throw bad("a value is neither a string nor null");
          }
          if (table.name !== current) {
            if (checked.has(table.name)) throw bad(`the rows of "${table.name}" are not together`);
            if (current !== undefined) {
              check(path, tables.get(current)!, digests.result(current));
              checked.add(current);
            }
            current = table.name;
          }
          digests.add(table.name, rowLine(table.name, table.columns, row as BackupRow));
          yield { table, row: row as BackupRow };
        }
      } finally {
        await lines.return(undefined);
      }
      // The last table, and the tables that had no line at all (checked against zero rows).
      for (const table of header.tables) {
        if (!checked.has(table.name)) check(path, table, digests.result(table.name));
      }
    },
  };
}

/** Reads a whole backup, checking every line, count and checksum; returns its header. */
export async function verifyBackup(path: string): Promise<BackupHeader> {
  const reader = await openBackup(path);
  for await (const _ of reader.rows()) {
    // each row is checked as it is read
  }
  return reader.header;
}

function check(path: string, table: BackupTable, got: { rows: number; sha256: string }) {
  if (got.rows !== table.rows) {
    throw new BackupFileError(
      `Cannot read backup "${path}": table "${table.name}" has ${got.rows} row(s), the header says ${table.rows} (truncated or edited)`,
    );
  }
  if (got.sha256 !== table.sha256) {
    throw new BackupFileError(
      `Cannot read backup "${path}": the checksum of table "${table.name}" differs from the header's (corrupted or edited)`,
    );
  }
}

function parseHeader(path: string, line: string): BackupHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new BackupFileError(`Cannot read backup "${path}": the first line is not a JSON header`);
  }
  const format = (parsed as { format?: unknown } | null)?.format;
  if (format !== BACKUP_FORMAT) {
    throw new BackupFileError(`Cannot read backup "${path}": not a trendedge backup`);
  }
  const version = (parsed as { version?: unknown }).version;
  if (version !== BACKUP_FORMAT_VERSION) {
    throw new BackupFileError(
      `Cannot read backup "${path}": format version ${
        JSON.stringify(version)
      } (this release reads version ${BACKUP_FORMAT_VERSION})`,
    );
  }
  const result = HeaderSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new BackupFileError(
      `Cannot read backup "${path}": invalid header at "${issue.path.join(".")}": ${issue.message}`,
    );
  }
  const header = result.data as BackupHeader;
  const names = header.tables.map((t) => t.name);
  if (new Set(names).size !== names.length) {
    throw new BackupFileError(`Cannot read backup "${path}": a table is listed twice`);
  }
  return header;
}

/** The lines of a gzip file, without their newlines; gzip errors become BackupFileError. */
async function* readLines(path: string): AsyncGenerator<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw new BackupFileError(`Cannot read backup "${path}": ${(error as Error).message}`);
  }
  const text = file.readable
    .pipeThrough(new DecompressionStream("gzip"))
    .pipeThrough(new TextDecoderStream("utf-8", { fatal: true }));
  const reader = text.getReader();
  let buffer = "";
  try {
    while (true) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw new BackupFileError(
          `Cannot read backup "${path}": ${(error as Error).message} (truncated or corrupted)`,
        );
      }
      if (chunk.done) break;
      const parts = (buffer + chunk.value).split("\n");
      buffer = parts.pop()!;
      yield* parts;
    }
    if (buffer !== "") {
      throw new BackupFileError(`Cannot read backup "${path}": the last line is cut off`);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
