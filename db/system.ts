/** Reads for the admin's system page: every broker account of every user (no credentials). */
import type { Queryable } from "./client.ts";

/** A broker account as the system page lists it. */
export interface SystemAccount {
  id: string;
  alias: string;
  broker: string;
  live: boolean;
  kill_switch: boolean;
  owner: string;
}

/** Every broker account with its owner's email, by owner then alias (at most 500). */
export function allAccounts(db: Queryable): Promise<SystemAccount[]> {
  return db.query<SystemAccount & Record<string, unknown>>(
    `SELECT a.id::text AS id, a.alias, a.broker, a.live, a.kill_switch, u.email AS owner
     FROM broker_accounts a JOIN users u ON u.id = a.user_id
     ORDER BY u.email, a.alias
     LIMIT 500`,
  );
}
