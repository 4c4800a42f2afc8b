import postgres from "postgres";
import { type Db, type OpenDbOptions, type Row, withTimeout } from "./client.ts";

const INT8_OID = 20;

/** Opens a pool on a PostgreSQL server through postgres.js. */
export function openPostgres(url: string, options: OpenDbOptions = {}): Db {
  const sql = postgres(url, {
    max: options.poolSize ?? 10,
    prepare: options.prepare ?? true,
    idle_timeout: 300,
    connect_timeout: Math.ceil((options.connectTimeoutMs ?? 5_000) / 1000),
    connection: {
      statement_timeout: options.statementTimeoutMs ?? 30_000,
      application_name: "trendedge",
    },
    onnotice: () => {},
    // int8 as number on both engines (PGlite is configured the same way).
    types: {
      int8: {
        to: INT8_OID,
        from: [INT8_OID],
        serialize: (v: unknown) => String(v),
        parse: (v: string) => Number(v),
      },
    },
  });
  let closed = false;
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  const queryTimeoutMs = options.queryTimeoutMs ?? statementTimeoutMs + 5_000;
  const transactionTimeoutMs = options.transactionTimeoutMs ?? statementTimeoutMs * 4;
  // `unsafe` ignores the pool's `prepare` and defaults to unnamed statements: every query
  // would be parsed and planned again, in two round trips. Pass it on explicitly.
  const prepare = { prepare: options.prepare ?? true };
  const query = async <T extends Row>(text: string, params?: readonly unknown[]) =>
    (await withTimeout(
      sql.unsafe(text, (params ?? []) as never[], prepare).execute(),
      queryTimeoutMs,
      "a query",
    )) as unknown as T[];
  return {
    engine: "postgres",
    query,
    transaction<T>(fn: (tx: { query: typeof query }) => Promise<T>) {
      const run = sql.begin((tx) =>
        fn({
          query: async <R extends Row>(text: string, params?: readonly unknown[]) =>
            (await tx.unsafe(text, (params ?? []) as never[], prepare)) as unknown as R[],
        })
      ) as Promise<T>;
      return withTimeout(run, transactionTimeoutMs, "a transaction");
    },
    async listen(channel, onNotify) {
      const { unlisten } = await sql.listen(channel, onNotify);
      return async () => {
        if (!closed) await unlisten();
      };
    },
    async ping(timeoutMs) {
      const started = performance.now();
      await withTimeout(sql`SELECT 1`.execute(), timeoutMs, "ping");
      return performance.now() - started;
    },
    async close(timeoutMs = 5_000) {
      if (closed) return;
      closed = true;
      await sql.end({ timeout: timeoutMs / 1000 });
    },
  };
}
