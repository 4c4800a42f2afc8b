/**
 * Broker accounts as their owner sees them, and the kill switches: one per account
 * (`broker_accounts.kill_switch`) and one global (`settings` row `kill_switch`, value
 * `{"enabled": boolean}`). Every switch change is journaled as `kill_switch.changed`.
 */
import { audit, type AuditActor } from "./audit.ts";
import type { Db, Queryable } from "./client.ts";

/** A broker account, without its credentials. */
export interface AccountRow {
  id: string;
  userId: string;
  alias: string;
  broker: "paper" | "alpaca";
  live: boolean;
  killSwitch: boolean;
  createdAt: Date;
}

/** The `settings` key of the global kill switch. */
export const GLOBAL_KILL_SWITCH_KEY = "kill_switch";

const COLUMNS = `id, user_id AS "userId", alias, broker, live, kill_switch AS "killSwitch",
  created_at AS "createdAt"`;

/** The accounts of a user, by alias. */
export function listAccounts(db: Queryable, userId: string): Promise<AccountRow[]> {
  return db.query<AccountRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM broker_accounts WHERE user_id = $1 ORDER BY alias`,
    [userId],
  );
}

/** The account `alias` of `userId`, or null (also when another user has that alias). */
export async function getAccountByAlias(
  db: Queryable,
  userId: string,
  alias: string,
): Promise<AccountRow | null> {
  const [row] = await db.query<AccountRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM broker_accounts WHERE user_id = $1 AND alias = $2`,
    [userId, alias],
  );
  return row ?? null;
}

/**
 * Turns the kill switch of `userId`'s account `alias` on or off, journaling the change.
 * Returns the updated account, or null when the user has no such account.
 */
export function setAccountKillSwitch(
  db: Db,
  userId: string,
  alias: string,
  on: boolean,
  actor?: AuditActor,
): Promise<AccountRow | null> {
  return db.transaction(async (tx) => {
    const [before] = await tx.query<{ killSwitch: boolean }>(
      `SELECT kill_switch AS "killSwitch" FROM broker_accounts
       WHERE user_id = $1 AND alias = $2 FOR UPDATE`,
      [userId, alias],
    );
    if (!before) return null;
    const [row] = await tx.query<AccountRow & Record<string, unknown>>(
      `UPDATE broker_accounts SET kill_switch = $3 WHERE user_id = $1 AND alias = $2
       RETURNING ${COLUMNS}`,
      [userId, alias, on],
    );
    await journalSwitch(tx, {
      userId,
      accountId: row!.id,
      data: { scope: "account", account: alias, enabled: on, previous: before.killSwitch },
    });
    if (actor) {
      await audit(tx, {
        ...actor,
        action: "kill_switch.changed",
        targetType: "broker_account",
        targetId: row!.id,
        data: { scope: "account", account: alias, enabled: on, previous: before.killSwitch },
      });
    }
    return row!;
  });
}

/** True when the global kill switch is on (no row means off). */
export async function getGlobalKillSwitch(db: Queryable): Promise<boolean> {
  const [row] = await db.query<{ enabled: boolean | null }>(
    `SELECT (value ->> 'enabled')::boolean AS enabled FROM settings WHERE key = $1`,
    [GLOBAL_KILL_SWITCH_KEY],
  );
  return row?.enabled === true;
}

/** Turns the global kill switch on or off on behalf of `byUserId`, journaling the change. */
export function setGlobalKillSwitch(
  db: Db,
  on: boolean,
  byUserId: string,
  actor?: AuditActor,
): Promise<void> {
  return db.transaction(async (tx) => {
    // Lock the row (creating it first if needed) so concurrent changes journal in order.
    await tx.query(
      `INSERT INTO settings (key, value) VALUES ($1, '{"enabled": false}')
       ON CONFLICT (key) DO NOTHING`,
      [GLOBAL_KILL_SWITCH_KEY],
    );
    const [before] = await tx.query<{ enabled: boolean | null }>(
      `SELECT (value ->> 'enabled')::boolean AS enabled FROM settings WHERE key = $1 FOR UPDATE`,
      [GLOBAL_KILL_SWITCH_KEY],
    );
    await tx.query(
      `UPDATE settings SET value = $2::text::jsonb, updated_at = now() WHERE key = $1`,
      [GLOBAL_KILL_SWITCH_KEY, JSON.stringify({ enabled: on, by: byUserId })],
    );
    await journalSwitch(tx, {
      userId: byUserId,
      accountId: null,
      data: { scope: "global", enabled: on, previous: before?.enabled === true },
    });
    if (actor) {
      await audit(tx, {
        ...actor,
        action: "kill_switch.changed",
        targetType: "global",
        data: { scope: "global", enabled: on, previous: before?.enabled === true },
      });
    }
  });
}

async function journalSwitch(
  tx: Queryable,
  entry: { userId: string; accountId: string | null; data: Record<string, unknown> },
): Promise<void> {
  await tx.query(
    `INSERT INTO journal (user_id, account_id, event, data)
     VALUES ($1, $2, 'kill_switch.changed', $3::text::jsonb)`,
    [entry.userId, entry.accountId, JSON.stringify(entry.data)],
  );
}
