/**
 * One small interface over two engines: embedded PGlite (no server, the default) and a real
 * PostgreSQL server through postgres.js. SQL is written once, with `$1`-style parameters, and
 * rows come back with the same JavaScript types from either engine.
 */

/** A result row. */
export type Row = Record<string, unknown>;

/**
 * Anything that runs SQL: the database or an open transaction.
 *
 * Pass JSON as a string and cast it in SQL (`$1::text::jsonb`): the engines serialize a
 * parameter typed `jsonb` differently (postgres.js would encode a string a second time).
 */
export interface Queryable {
  /** Runs one statement with `$1`-style parameters and returns its rows. */
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

/** An open transaction; it commits when its callback resolves and rolls back when it throws. */
export type Tx = Queryable;

/** Which engine runs the SQL. */
export type DbEngine = "pglite" | "postgres";

/** The database every module receives. */
export interface Db extends Queryable {
  readonly engine: DbEngine;
  /** Runs `fn` in one transaction: commit when it resolves, roll back when it throws. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` for every `NOTIFY` on `channel` until the returned function is called.
   * On postgres.js the listening connection reconnects by itself after an outage.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  /** Round-trips `SELECT 1` and returns its latency in ms; rejects after `timeoutMs`. */
  ping(timeoutMs: number): Promise<number>;
  /** Closes every connection; waits for running queries up to `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

/** Options of {@linkcode openDb}. */
export interface OpenDbOptions {
  /** A postgres:// URL; without one the embedded engine runs under `dataDir`. */
  url?: string;
  /** Folder of the embedded database; `undefined` keeps it in memory. */
  dataDir?: string;
  /** A `dumpDataDir()` tarball to start the embedded engine from (tests use migrated ones). */
  loadDataDir?: Blob;
  poolSize?: number;
  /** `false` for transaction-mode poolers (PgBouncer, Supavisor) that cannot keep prepared statements. */
  prepare?: boolean;
  statementTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * Client-side deadline of a query, waiting for a connection included (default: the statement
   * timeout + 5 s). postgres.js reconnects forever when connections are accepted and then
   * dropped; without this a query would wait out such an outage instead of failing.
   */
  queryTimeoutMs?: number;
  /** The same for a whole transaction (default: four statement timeouts). */
  transactionTimeoutMs?: number;
}

/** Opens the database that the options name: postgres.js when `url` is set, else PGlite. */
export async function openDb(options: OpenDbOptions): Promise<Db> {
  if (options.url) {
    const { openPostgres } = await import("./postgres.ts");
    return openPostgres(options.url, options);
  }
  const { openPglite } = await import("./pglite.ts");
  return openPglite(options);
}

/** Rejects with a timeout error when `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new DbUnavailableError(`Cannot reach the database: ${what} timed out after ${ms} ms`),
        ),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The database cannot be reached; requests that need it answer 503. */
export class DbUnavailableError extends Error {
  override name = "DbUnavailableError";
}

const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

/** True when `error` says the database is unreachable rather than that a query is wrong. */
export function isDbUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    if (e instanceof DbUnavailableError) return true;
    if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.ConnectionReset) {
      return true;
    }
    if (typeof e === "object" && "code" in e) {
      const code = String((e as { code: unknown }).code);
      if (UNAVAILABLE_CODES.has(code) || code.startsWith("08")) return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
