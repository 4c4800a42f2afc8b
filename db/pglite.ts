import { PGlite, type Transaction, types } from "@electric-sql/pglite";
import { type Db, type OpenDbOptions, type Queryable, type Row, withTimeout } from "./client.ts";

/** The embedded engine, which can also dump itself (tests start from migrated snapshots). */
export interface PgliteDb extends Db {
  /** A tarball of the whole data directory that `loadDataDir` accepts. */
  dump(): Promise<Blob>;
}

/** Opens the embedded engine: one connection, queries serialized, data under `dataDir`. */
export async function openPglite(options: OpenDbOptions = {}): Promise<PgliteDb> {
  if (options.dataDir) await Deno.mkdir(options.dataDir, { recursive: true });
  const pg = await PGlite.create({
    dataDir: options.dataDir,
    loadDataDir: options.loadDataDir,
    // int8 as number on both engines (postgres.js is configured the same way).
    parsers: { [types.INT8]: (v: string) => Number(v) },
  });
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
      await pg.close();
    },
  };
}

function queryable(pg: PGlite | Transaction): Queryable {
  return {
    async query<T extends Row>(text: string, params?: readonly unknown[]) {
      return (await pg.query<T>(text, params as unknown[] | undefined)).rows;
    },
  };
}
