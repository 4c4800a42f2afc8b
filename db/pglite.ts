import { PGlite, type Transaction, types } from "@electric-sql/pglite";
import { type Db, type OpenDbOptions, type Queryable, type Row, withTimeout } from "./client.ts";

/** The embedded engine, which can also dump itself (tests start from migrated snapshots). */
export interface PgliteDb extends Db {
  /** A tarball of the whole data directory that `loadDataDir` accepts. */
  dump(): Promise<Blob>;
}

/** Opens the embedded engine: one connection, queries serialized, data under `dataDir`. */
export async function openPglite(options: OpenDbOptions = {}): Promise<PgliteDb> {
  let lock: Deno.FsFile | undefined;
  if (options.dataDir) {
    await Deno.mkdir(options.dataDir, { recursive: true });
    lock = await lockDataDir(options.dataDir);
  }
  let pg: PGlite;
  try {
    pg = await openEngine(options);
  } catch (error) {
    lock?.close();
    throw error;
  }
  let closed = false;
  return {
    engine: "pglite",
    ...queryable(pg),
    transaction: (fn) => pg.transaction((tx) => fn(queryable(tx))),
    async listen(channel, onNotify) {
      const unlisten = await pg.listen(channel, onNotify);
      return async () => {
        if (!closed) await unlisten();
      };
    },
    async ping(timeoutMs) {
      if (closed) throw new Error("Cannot ping the database: it is closed");
      const started = performance.now();
      await withTimeout(pg.query("SELECT 1"), timeoutMs, "ping");
      return performance.now() - started;
    },
    dump: () => pg.dumpDataDir("none"),
    async close() {
      if (closed) return;
      closed = true;
      try {
        await pg.close();
      } finally {
        lock?.close(); // closing the file releases the lock
      }
    },
  };
}

/** Another process has the embedded database open (PGlite is one process's database). */
export class DataDirInUseError extends Error {
  override name = "DataDirInUseError";
}

/**
 * PGlite is one process's database: a second process on the same folder would corrupt it. An
 * exclusive OS lock on `<dataDir>.lock` (released when the process exits, even by a crash)
 * makes the second one fail loudly instead.
 */
async function lockDataDir(dataDir: string): Promise<Deno.FsFile> {
  const file = await Deno.open(`${dataDir.replace(/\/+$/, "")}.lock`, {
    create: true,
    write: true,
  });
  if (await file.tryLock(true)) return file;
  file.close();
  throw new DataDirInUseError(
    `Cannot open the embedded database at "${dataDir}": another trendedge process is using it ` +
      "(stop it first, or set DATABASE_URL so that several processes share a PostgreSQL server)",
  );
}

function openEngine(options: OpenDbOptions): Promise<PGlite> {
  return PGlite.create({
    dataDir: options.dataDir,
    loadDataDir: options.loadDataDir,
    // int8 as number on both engines (postgres.js is configured the same way).
    parsers: { [types.INT8]: (v: string) => Number(v) },
  });
}

function queryable(pg: PGlite | Transaction): Queryable {
  return {
    async query<T extends Row>(text: string, params?: readonly unknown[]) {
      return (await pg.query<T>(text, params as unknown[] | undefined)).rows;
    },
  };
}
