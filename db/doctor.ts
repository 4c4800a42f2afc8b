/** The read-only queries of `deno task doctor`. */
import type { Queryable } from "./client.ts";

/** The server's version string (`15.4`, `17.4` for PGlite's embedded server). */
export async function serverVersion(db: Queryable): Promise<string> {
  const [row] = await db.query<{ server_version: string }>("SHOW server_version");
  return row?.server_version ?? "unknown";
}

/** An Alpaca account and its sealed credentials (null when none were stored). */
export interface SealedCredentials {
  id: string;
  alias: string;
  credentials: Uint8Array | null;
}

/**
 * Every Alpaca account with its sealed credentials, oldest first; null when the accounts table
 * does not exist yet (migrations pending).
 */
export async function alpacaCredentials(db: Queryable): Promise<SealedCredentials[] | null> {
  const [table] = await db.query<{ present: boolean }>(
    "SELECT to_regclass('public.broker_accounts') IS NOT NULL AS present",
  );
  if (!table?.present) return null;
  return db.query<SealedCredentials & Record<string, unknown>>(
    `SELECT id, alias, credentials FROM broker_accounts WHERE broker = 'alpaca'
     ORDER BY created_at, id`,
  );
}
