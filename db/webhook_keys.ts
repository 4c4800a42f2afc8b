/**
 * Webhook keys: stored as hashes, looked up by hash. Their owner creates, rotates and revokes
 * them (every change audited in its transaction); a week before a key expires its owner is
 * warned, once.
 */
import { EXPIRY_WARNING_MS } from "../lib/webhook_key.ts";
import { audit, type AuditActor } from "./audit.ts";
import { Batcher, type BatcherOptions } from "./batcher.ts";
import { type Db, isDbUnavailable, type Queryable } from "./client.ts";
import { isUuid } from "./users.ts";

/** Most keys a user may have active at once (expired and revoked ones do not count). */
export const MAX_ACTIVE_WEBHOOK_KEYS = 20;

/** A stored key, without its secret. */
export interface WebhookKeyRow {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  /** The key that a rotation made in this key's place. */
  replacedBy: string | null;
}

const COLUMNS = `id, user_id AS "userId", name, prefix, created_at AS "createdAt",
  last_used_at AS "lastUsedAt", expires_at AS "expiresAt", revoked_at AS "revokedAt",
  replaced_by AS "replacedBy"`;

/** Stores a new key's hash for `userId`. */
export async function insertWebhookKey(
  db: Queryable,
  key: {
    id: string;
    userId: string;
    name: string;
    prefix: string;
    hash: Uint8Array;
    expiresAt?: Date | null;
    /** Default: the database's clock. */
    createdAt?: Date;
  },
): Promise<WebhookKeyRow> {
  const [row] = await db.query<WebhookKeyRow & Record<string, unknown>>(
    `INSERT INTO webhook_keys (id, user_id, name, prefix, key_hash, expires_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now())) RETURNING ${COLUMNS}`,
    [
      key.id,
      key.userId,
      key.name,
      key.prefix,
      key.hash,
      key.expiresAt ?? null,
      key.createdAt ?? null,
    ],
  );
  return row!;
}

/** Records that a key was used (at most once a minute per key, to keep the hot path light). */
export async function touchWebhookKey(db: Queryable, id: string, now: Date): Promise<void> {
  await db.query(
    `UPDATE webhook_keys SET last_used_at = $2
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')`,
    [id, now],
  );
}

/** A usable key with the account a signal names (null when the user has no such account). */
export interface KeyAndAccount {
  key: WebhookKeyRow;
  account: {
    id: string;
    broker: "paper" | "alpaca";
    symbolMap: Record<string, string>;
    microFutures: boolean;
  } | null;
}

/**
 * The hot path's one lookup: the active key with this hash and, in the same round trip, its
 * user's broker account `alias`. Null when the key is unknown, revoked or expired.
 */
export async function findKeyAndAccount(
  db: Queryable,
  hash: Uint8Array,
  alias: string,
  now: Date,
): Promise<KeyAndAccount | null> {
  const [row] = await db.query<Record<string, unknown>>(
    `SELECT k.id, k.user_id AS "userId", k.name, k.prefix, k.created_at AS "createdAt",
            k.last_used_at AS "lastUsedAt", k.expires_at AS "expiresAt", k.revoked_at AS "revokedAt",
            k.replaced_by AS "replacedBy",
            a.id AS "accountId", a.broker, a.symbol_map AS "symbolMap", a.micro_futures AS "microFutures"
     FROM webhook_keys k
     LEFT JOIN broker_accounts a ON a.user_id = k.user_id AND a.alias = $3
     WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)`,
    [hash, now, alias],
  );
  return row ? keyAndAccount(row) : null;
}

/** One lookup of {@linkcode findKeysAndAccounts}: what {@linkcode findKeyAndAccount} takes. */
export interface KeyLookup {
  hash: Uint8Array;
  alias: string;
  now: Date;
}

/**
 * {@linkcode findKeyAndAccount} for many lookups in ONE round trip, answers in their order
 * (null for an unknown, revoked or expired key).
 */
export async function findKeysAndAccounts(
  db: Queryable,
  lookups: readonly KeyLookup[],
): Promise<Array<KeyAndAccount | null>> {
  if (lookups.length === 0) return [];
  const input = lookups.map((l, n) => ({
    n,
    hash: hex(l.hash),
    alias: l.alias,
    now: l.now.toISOString(),
  }));
  const rows = await db.query<Record<string, unknown>>(
    `SELECT x.n, k.id, k.user_id AS "userId", k.name, k.prefix, k.created_at AS "createdAt",
            k.last_used_at AS "lastUsedAt", k.expires_at AS "expiresAt", k.revoked_at AS "revokedAt",
            k.replaced_by AS "replacedBy",
            a.id AS "accountId", a.broker, a.symbol_map AS "symbolMap", a.micro_futures AS "microFutures"
     FROM jsonb_to_recordset($1::text::jsonb) AS x(n int, hash text, alias text, now timestamptz)
     JOIN webhook_keys k ON k.key_hash = decode(x.hash, 'hex')
     LEFT JOIN broker_accounts a ON a.user_id = k.user_id AND a.alias = x.alias
     WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > x.now)`,
    [JSON.stringify(input)],
  );
  const found: Array<KeyAndAccount | null> = lookups.map(() => null);
  for (const { n, ...row } of rows) found[n as number] = keyAndAccount(row);
  return found;
}

/** Options of {@linkcode WebhookKeyFinder}. */
export interface WebhookKeyFinderOptions extends BatcherOptions {
  /** How long a found key and account may be answered from memory (default 60 s). */
  cacheMs?: number;
  /** Most keys kept in memory (default 10,000; the oldest go first). */
  cacheSize?: number;
  /** The clock of the cache (ms); default `performance.now`. */
  now?: () => number;
}

/**
 * Looks keys up by hash for the webhooks: concurrent requests share one round trip
 * ({@linkcode Batcher}), each with {@linkcode findKeyAndAccount}'s answer, and a lookup may ask
 * for a cached answer instead.
 *
 * A cached answer can be stale (the key revoked, the account changed a moment ago), so only a
 * caller that checks it again where it counts may ask for one: the signal webhook does, in the
 * statement that accepts the signal ({@linkcode acceptSignals}), and looks again
 * (`cached: false`) when that check fails. Only answers with an account are kept, and none is
 * answered from memory after the database failed until a lookup reaches it again
 * ({@linkcode WebhookKeyFinder.distrust}). A failed lookup fails every request of its batch (the
 * database is down: each answers 503).
 */
export class WebhookKeyFinder {
  readonly #batcher: Batcher<KeyLookup, KeyAndAccount | null>;
  readonly #cache = new Map<string, { found: KeyAndAccount; until: number }>();
  readonly #cacheMs: number;
  readonly #cacheSize: number;
  readonly #now: () => number;
  /** False from a database failure until a lookup succeeds again. */
  #trusted = true;

  constructor(db: Queryable, options: WebhookKeyFinderOptions = {}) {
    this.#batcher = new Batcher(async (lookups) => {
      let found: Array<KeyAndAccount | null>;
      try {
        found = await findKeysAndAccounts(db, lookups);
      } catch (error) {
        if (isDbUnavailable(error)) this.#trusted = false;
        throw error;
      }
      this.#trusted = true;
      return found.map((value) => ({ ok: true, value }));
    }, options);
    this.#cacheMs = options.cacheMs ?? 60_000;
    this.#cacheSize = options.cacheSize ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * The active key with this hash and its user's account `alias`, as
   * {@linkcode findKeyAndAccount}; with `cached`, possibly from memory (see the class).
   */
  async find(
    hash: Uint8Array,
    alias: string,
    now: Date,
    options: { cached?: boolean } = {},
  ): Promise<KeyAndAccount | null> {
    const id = `${hex(hash)}\n${alias}`;
    if (options.cached && this.#trusted) {
      const entry = this.#cache.get(id);
      const expiresAt = entry?.found.key.expiresAt;
      if (
        entry && entry.until > this.#now() &&
        (!expiresAt || expiresAt.getTime() > now.getTime())
      ) {
        return entry.found;
      }
    }
    const found = await this.#batcher.add({ hash, alias, now });
    this.#cache.delete(id);
    if (found?.account && this.#cacheMs > 0) {
      if (this.#cache.size >= this.#cacheSize) {
        this.#cache.delete(this.#cache.keys().next().value!);
      }
      this.#cache.set(id, { found, until: this.#now() + this.#cacheMs });
    }
    return found;
  }

  /**
   * Stops answering from memory until a lookup reaches the database again: while it is
   * unreachable, a request must wait on a lookup (and time out) rather than go straight to a
   * statement that could commit, unacknowledged, once the database is back.
   */
  distrust(): void {
    this.#trusted = false;
  }
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function keyAndAccount(row: Record<string, unknown>): KeyAndAccount {
  const { accountId, broker, symbolMap, microFutures, ...key } = row;
  return {
    key: key as unknown as WebhookKeyRow,
    account: accountId
      ? {
        id: accountId as string,
        broker: broker as "paper" | "alpaca",
        symbolMap: symbolMap as Record<string, string>,
        microFutures: microFutures as boolean,
      }
      : null,
  };
}

/** A key cannot be made: the user has {@linkcode MAX_ACTIVE_WEBHOOK_KEYS} active keys. */
export class WebhookKeyLimitError extends Error {
  override name = "WebhookKeyLimitError";
}

/** A key cannot be rotated: it is revoked, expired or replaced already. */
export class WebhookKeyInactiveError extends Error {
  override name = "WebhookKeyInactiveError";
}

/** What is stored of a freshly generated key (lib/webhook_key.ts), with the id to give it. */
export interface NewKeyMaterial {
  id: string;
  prefix: string;
  hash: Uint8Array;
}

/** The user's keys, newest first, revoked and expired ones included. */
export function listWebhookKeys(db: Queryable, userId: string): Promise<WebhookKeyRow[]> {
  return db.query<WebhookKeyRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM webhook_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC`,
    [userId],
  );
}

/** One of the user's keys; null when it is unknown, another user's, or `id` is no UUID. */
export async function getWebhookKey(
  db: Queryable,
  userId: string,
  id: string,
): Promise<WebhookKeyRow | null> {
  if (!isUuid(id)) return null;
  const [row] = await db.query<WebhookKeyRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM webhook_keys WHERE id = $1 AND user_id = $2`,
    [id, userId],
  );
  return row ?? null;
}

/** Input of {@linkcode createWebhookKey}. */
export interface CreateWebhookKeyInput {
  userId: string;
  name: string;
  key: NewKeyMaterial;
  /** Null: the key never expires. */
  expiresAt: Date | null;
  now: Date;
  actor: AuditActor;
  /** Default {@linkcode MAX_ACTIVE_WEBHOOK_KEYS}. */
  maxActive?: number;
}

/**
 * Stores a new key for the user and audits `webhook_key.created`, in one transaction. Throws
 * {@linkcode WebhookKeyLimitError} when the user has `maxActive` active keys already.
 */
export function createWebhookKey(db: Db, input: CreateWebhookKeyInput): Promise<WebhookKeyRow> {
  const max = input.maxActive ?? MAX_ACTIVE_WEBHOOK_KEYS;
  return db.transaction(async (tx) => {
    await lockUser(tx, input.userId);
    if (await countActive(tx, input.userId, input.now) >= max) {
      throw new WebhookKeyLimitError(
        `Cannot create webhook key "${input.name}": ${max} keys are active, the most allowed; revoke one first`,
      );
    }
    const row = await insertWebhookKey(tx, {
      ...input.key,
      userId: input.userId,
      name: input.name,
      expiresAt: input.expiresAt,
      createdAt: input.now,
    });
    await audit(tx, {
      ...input.actor,
      action: "webhook_key.created",
      targetType: "webhook_key",
      targetId: row.id,
      data: {
        name: row.name,
        prefix: row.prefix,
        expires_at: row.expiresAt?.toISOString() ?? null,
      },
    });
    return row;
  });
}

/** Input of {@linkcode rotateWebhookKey}. */
export interface RotateWebhookKeyInput {
  userId: string;
  /** The key to rotate. */
  id: string;
  /** The key that takes its place. */
  key: NewKeyMaterial;
  /** How long the old key keeps working (0: revoked at once). */
  graceMs: number;
  now: Date;
  actor: AuditActor;
  /** Default {@linkcode MAX_ACTIVE_WEBHOOK_KEYS}. */
  maxActive?: number;
}

/**
 * Replaces one of the user's keys with a new one of the same name and lifetime (a key that
 * never expired is replaced by one that never expires). The old key is revoked at once, or with
 * a grace period made to expire then (never later than it would have); it names its successor in
 * `replacedBy`. One transaction, audited as `webhook_key.rotated`.
 *
 * Null when the key is unknown or another user's. Throws {@linkcode WebhookKeyInactiveError}
 * for a revoked, expired or already replaced key, and {@linkcode WebhookKeyLimitError} when a
 * grace period would leave more than `maxActive` keys active.
 */
export function rotateWebhookKey(
  db: Db,
  input: RotateWebhookKeyInput,
): Promise<{ old: WebhookKeyRow; created: WebhookKeyRow } | null> {
  if (!isUuid(input.id)) return Promise.resolve(null);
  const max = input.maxActive ?? MAX_ACTIVE_WEBHOOK_KEYS;
  return db.transaction(async (tx) => {
    await lockUser(tx, input.userId);
    const [old] = await tx.query<WebhookKeyRow & Record<string, unknown>>(
      `SELECT ${COLUMNS} FROM webhook_keys WHERE id = $1 AND user_id = $2 FOR UPDATE`,
      [input.id, input.userId],
    );
    if (!old) return null;
    const now = input.now.getTime();
    const why = old.revokedAt !== null
      ? "it is revoked"
      : old.expiresAt !== null && old.expiresAt.getTime() <= now
      ? "it has expired"
      : old.replacedBy !== null
      ? `it was replaced by "${old.replacedBy}" already; rotate that one`
      : null;
    if (why) throw new WebhookKeyInactiveError(`Cannot rotate webhook key "${old.id}": ${why}`);
    if (input.graceMs > 0 && await countActive(tx, input.userId, input.now) >= max) {
      throw new WebhookKeyLimitError(
        `Cannot rotate webhook key "${old.id}" with a grace period: ${max} keys are active, the most allowed; rotate without one or revoke a key first`,
      );
    }
    const lifetime = old.expiresAt === null
      ? null
      : old.expiresAt.getTime() - old.createdAt.getTime();
    const created = await insertWebhookKey(tx, {
      ...input.key,
      userId: input.userId,
      name: old.name,
      expiresAt: lifetime === null ? null : new Date(now + lifetime),
      createdAt: input.now,
    });
    const [updated] = await tx.query<WebhookKeyRow & Record<string, unknown>>(
      `UPDATE webhook_keys
       SET replaced_by = $2,
           revoked_at = CASE WHEN $4::bigint = 0 THEN $3::timestamptz ELSE revoked_at END,
           expires_at = CASE WHEN $4::bigint = 0 THEN expires_at
             ELSE least(coalesce(expires_at, 'infinity'), $3::timestamptz + $4::bigint * interval '1 millisecond') END
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [old.id, created.id, input.now, input.graceMs],
    );
    await audit(tx, {
      ...input.actor,
      action: "webhook_key.rotated",
      targetType: "webhook_key",
      targetId: old.id,
      data: {
        name: old.name,
        prefix: old.prefix,
        replaced_by: created.id,
        new_prefix: created.prefix,
        grace_minutes: input.graceMs / 60_000,
        old_expires_at: updated!.expiresAt?.toISOString() ?? null,
        expires_at: created.expiresAt?.toISOString() ?? null,
      },
    });
    return { old: updated!, created };
  });
}

/**
 * Revokes one of the user's keys and audits `webhook_key.revoked`, in one transaction. Revoking
 * a revoked key changes nothing (and audits nothing): `revoked` is false then. Null when the key
 * is unknown or another user's.
 */
export async function revokeWebhookKey(
  db: Db,
  input: { userId: string; id: string; now: Date; actor: AuditActor },
): Promise<{ row: WebhookKeyRow; revoked: boolean } | null> {
  if (!isUuid(input.id)) return null;
  return await db.transaction(async (tx) => {
    const [row] = await tx.query<WebhookKeyRow & Record<string, unknown>>(
      `UPDATE webhook_keys SET revoked_at = $3
       WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
      [input.id, input.userId, input.now],
    );
    if (!row) {
      const existing = await getWebhookKey(tx, input.userId, input.id);
      return existing ? { row: existing, revoked: false } : null;
    }
    await audit(tx, {
      ...input.actor,
      action: "webhook_key.revoked",
      targetType: "webhook_key",
      targetId: row.id,
      data: { name: row.name, prefix: row.prefix },
    });
    return { row, revoked: true };
  });
}

/** A key whose owner has just been warned that it expires soon. */
export interface ExpiringWebhookKey {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  expiresAt: Date;
}

/**
 * Claims the usable keys that expire within `withinMs` of `now` (default a week) and whose owner
 * has not been warned: marks them warned and journals `webhook_key.expiring` for each, in one
 * statement. Rows another instance is claiming are skipped, so each key is warned exactly once.
 * Keys replaced by a rotation are not warned about (their successor is in place).
 */
export function warnExpiringWebhookKeys(
  db: Queryable,
  now: Date,
  options: { withinMs?: number; limit?: number } = {},
): Promise<ExpiringWebhookKey[]> {
  const until = new Date(now.getTime() + (options.withinMs ?? EXPIRY_WARNING_MS));
  return db.query<ExpiringWebhookKey & Record<string, unknown>>(
    `WITH due AS (
       SELECT id FROM webhook_keys
       WHERE revoked_at IS NULL AND expiry_warned_at IS NULL AND expires_at IS NOT NULL
         AND replaced_by IS NULL AND expires_at > $1::timestamptz AND expires_at <= $2::timestamptz
       ORDER BY expires_at LIMIT $3
       FOR UPDATE SKIP LOCKED
     ), warned AS (
       UPDATE webhook_keys k SET expiry_warned_at = $1::timestamptz
       FROM due WHERE k.id = due.id AND k.expiry_warned_at IS NULL
       RETURNING k.id, k.user_id, k.name, k.prefix, k.expires_at
     ), journaled AS (
       INSERT INTO journal (user_id, event, data, at)
       SELECT user_id, 'webhook_key.expiring',
              jsonb_build_object('key_id', id, 'name', name, 'prefix', prefix, 'expires_at',
                to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
              $1::timestamptz
       FROM warned
     )
     SELECT id, user_id AS "userId", name, prefix, expires_at AS "expiresAt"
     FROM warned ORDER BY expires_at, id`,
    [now, until, options.limit ?? 100],
  );
}

/** Serializes key changes of one user (the active-key limit holds under concurrency). */
async function lockUser(tx: Queryable, userId: string): Promise<void> {
  await tx.query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", [userId]);
}

async function countActive(tx: Queryable, userId: string, now: Date): Promise<number> {
  const [row] = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM webhook_keys
     WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`,
    [userId, now],
  );
  return row!.n;
}
