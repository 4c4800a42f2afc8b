/**
 * Broker accounts as their owner sees them — created, changed and deleted with an audit entry in
 * the same transaction — and the kill switches: one per account (`broker_accounts.kill_switch`)
 * and one global (`settings` row `kill_switch`, value `{"enabled": boolean}`). Every switch
 * change is journaled as `kill_switch.changed`.
 *
 * Credentials come in already sealed (lib/credentials.ts) and never go out: reads only say
 * whether an account has them.
 */
import { audit, type AuditActor } from "./audit.ts";
import type { Db, Queryable } from "./client.ts";
import { PAPER_ACCOUNT_ALIAS } from "./users.ts";

/** A broker account, without its credentials. */
export interface AccountRow {
  id: string;
  userId: string;
  alias: string;
  broker: "paper" | "alpaca";
  live: boolean;
  killSwitch: boolean;
  /** Whether sealed credentials are stored (their value is never read here). */
  hasCredentials: boolean;
  symbolMap: Record<string, string>;
  microFutures: boolean;
  /** RiskLimits (lib/risk.ts) as stored. */
  risk: Record<string, unknown>;
  /** Paper broker settings as stored. */
  paper: Record<string, unknown>;
  createdAt: Date;
}

/** A new broker account; `credentials` sealed already, null for the paper broker. */
export interface NewAccount {
  id: string;
  userId: string;
  alias: string;
  broker: "paper" | "alpaca";
  live: boolean;
  credentials: Uint8Array | null;
  symbolMap: Record<string, string>;
  microFutures: boolean;
  risk: Record<string, unknown>;
  paper: Record<string, unknown>;
}

/** The changes of {@linkcode updateAccount}; absent fields stay as they are. */
export interface AccountChanges {
  live?: boolean;
  /** Sealed already. */
  credentials?: Uint8Array;
  symbolMap?: Record<string, string>;
  microFutures?: boolean;
  risk?: Record<string, unknown>;
  paper?: Record<string, unknown>;
}

/** The user has an account with this alias already. */
export class AccountAliasTakenError extends Error {
  override name = "AccountAliasTakenError";
  constructor(alias: string) {
    super(`Cannot create account "${alias}": you have an account with this alias already`);
  }
}

/** The account cannot be deleted: it has history or an open position, or it is `paper`. */
export class AccountInUseError extends Error {
  override name = "AccountInUseError";
}

/** The `settings` key of the global kill switch. */
export const GLOBAL_KILL_SWITCH_KEY = "kill_switch";

const COLUMNS = `id, user_id AS "userId", alias, broker, live, kill_switch AS "killSwitch",
  credentials IS NOT NULL AS "hasCredentials", symbol_map AS "symbolMap",
  micro_futures AS "microFutures", risk, paper, created_at AS "createdAt"`;

/** Column of each changeable field, and its name in the API and the audit log. */
const CHANGEABLE = {
  live: { column: "live", name: "live", json: false },
  credentials: { column: "credentials", name: "credentials", json: false },
  symbolMap: { column: "symbol_map", name: "symbol_map", json: true },
  microFutures: { column: "micro_futures", name: "micro_futures", json: false },
  risk: { column: "risk", name: "risk", json: true },
  paper: { column: "paper", name: "paper", json: true },
} as const satisfies Record<keyof AccountChanges, { column: string; name: string; json: boolean }>;

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
 * Creates a broker account and audits `broker_account.created` (field names only, never the
 * credentials). Throws {@linkcode AccountAliasTakenError} when the user has the alias already.
 */
export async function createAccount(
  db: Db,
  account: NewAccount,
  actor: AuditActor,
): Promise<AccountRow> {
  try {
    return await db.transaction(async (tx) => {
      const [row] = await tx.query<AccountRow & Record<string, unknown>>(
        `INSERT INTO broker_accounts
           (id, user_id, alias, broker, live, credentials, symbol_map, micro_futures, risk, paper)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9::text::jsonb, $10::text::jsonb)
         ON CONFLICT (user_id, alias) DO NOTHING
         RETURNING ${COLUMNS}`,
        [
          account.id,
          account.userId,
          account.alias,
          account.broker,
          account.live,
          account.credentials,
          JSON.stringify(account.symbolMap),
          account.microFutures,
          JSON.stringify(account.risk),
          JSON.stringify(account.paper),
        ],
      );
      if (!row) throw new AccountAliasTakenError(account.alias);
      await audit(tx, {
        ...actor,
        action: "broker_account.created",
        targetType: "broker_account",
        targetId: row.id,
        data: {
          alias: row.alias,
          broker: row.broker,
          live: row.live,
          fields: fieldNames(account),
        },
      });
      return row;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new AccountAliasTakenError(account.alias);
    throw error;
  }
}

/**
 * Applies `changes` to `userId`'s account `alias` and audits `broker_account.updated` with the
 * names of the fields written. Returns the account after the change, or null when the user has
 * no such account.
 */
export function updateAccount(
  db: Db,
  userId: string,
  alias: string,
  changes: AccountChanges,
  actor: AuditActor,
): Promise<AccountRow | null> {
  return db.transaction(async (tx) => {
    const [before] = await tx.query<{ id: string; live: boolean }>(
      `SELECT id, live FROM broker_accounts WHERE user_id = $1 AND alias = $2 FOR UPDATE`,
      [userId, alias],
    );
    if (!before) return null;
    const sets: string[] = [];
    const params: unknown[] = [before.id];
    const fields: string[] = [];
    for (const [key, spec] of Object.entries(CHANGEABLE)) {
      const value = changes[key as keyof AccountChanges];
      if (value === undefined) continue;
      params.push(spec.json ? JSON.stringify(value) : value);
      sets.push(`${spec.column} = $${params.length}${spec.json ? "::text::jsonb" : ""}`);
      fields.push(spec.name);
    }
    if (sets.length === 0) {
      const [row] = await tx.query<AccountRow & Record<string, unknown>>(
        `SELECT ${COLUMNS} FROM broker_accounts WHERE id = $1`,
        [before.id],
      );
      return row!;
    }
    const [row] = await tx.query<AccountRow & Record<string, unknown>>(
      `UPDATE broker_accounts SET ${sets.join(", ")} WHERE id = $1 RETURNING ${COLUMNS}`,
      params,
    );
    await audit(tx, {
      ...actor,
      action: "broker_account.updated",
      targetType: "broker_account",
      targetId: before.id,
      data: {
        alias,
        fields,
        ...(changes.live !== undefined && changes.live !== before.live
          ? { live: changes.live, previous_live: before.live }
          : {}),
      },
    });
    return row!;
  });
}

/**
 * Deletes `userId`'s account `alias` and audits `broker_account.deleted`; returns its id, or
 * null when the user has no such account. Throws {@linkcode AccountInUseError} for the `paper`
 * account and for an account with orders or an open position: its history stays, and the kill
 * switch is the way to stop it.
 */
export function deleteAccount(
  db: Db,
  userId: string,
  alias: string,
  actor: AuditActor,
): Promise<string | null> {
  return db.transaction(async (tx) => {
    // The row lock waits for an executor inserting an order (which holds a key-share lock), so
    // the counts below see it.
    const [account] = await tx.query<{ id: string; broker: string }>(
      `SELECT id, broker FROM broker_accounts WHERE user_id = $1 AND alias = $2 FOR UPDATE`,
      [userId, alias],
    );
    if (!account) return null;
    if (alias === PAPER_ACCOUNT_ALIAS) {
      throw new AccountInUseError(
        `Cannot delete account "${alias}": every user keeps the paper account; use the kill switch to stop it`,
      );
    }
    const [use] = await tx.query<{ orders: number; open: number }>(
      `SELECT (SELECT count(*)::int FROM orders WHERE account_id = $1) AS orders,
              (SELECT count(*)::int FROM positions WHERE account_id = $1 AND quantity <> 0) AS open`,
      [account.id],
    );
    if (use!.orders > 0 || use!.open > 0) {
      const what = [
        use!.orders > 0 ? `${use!.orders} order(s)` : "",
        use!.open > 0 ? `${use!.open} open position(s)` : "",
      ].filter(Boolean).join(" and ");
      throw new AccountInUseError(
        `Cannot delete account "${alias}": it has ${what}, whose history must stay; turn its kill switch on to stop trading instead`,
      );
    }
    await tx.query(`DELETE FROM broker_accounts WHERE id = $1`, [account.id]);
    await audit(tx, {
      ...actor,
      action: "broker_account.deleted",
      targetType: "broker_account",
      targetId: account.id,
      data: { alias, broker: account.broker },
    });
    return account.id;
  });
}

/** The API names of the fields a new account sets beyond its alias and broker. */
function fieldNames(account: NewAccount): string[] {
  return [
    ...(account.credentials ? ["credentials"] : []),
    ...(Object.keys(account.symbolMap).length > 0 ? ["symbol_map"] : []),
    ...(account.microFutures ? ["micro_futures"] : []),
    ...(Object.keys(account.risk).length > 0 ? ["risk"] : []),
    ...(Object.keys(account.paper).length > 0 ? ["paper"] : []),
  ];
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === "object" && error !== null &&
    (error as { code?: unknown }).code === "23505";
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
