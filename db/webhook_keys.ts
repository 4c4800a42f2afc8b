/** Webhook keys: stored as hashes, looked up by hash. */
import type { Queryable } from "./client.ts";

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
}

const COLUMNS = `id, user_id AS "userId", name, prefix, created_at AS "createdAt",
  last_used_at AS "lastUsedAt", expires_at AS "expiresAt", revoked_at AS "revokedAt"`;

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
  },
): Promise<WebhookKeyRow> {
  const [row] = await db.query<WebhookKeyRow & Record<string, unknown>>(
    `INSERT INTO webhook_keys (id, user_id, name, prefix, key_hash, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [key.id, key.userId, key.name, key.prefix, key.hash, key.expiresAt ?? null],
  );
  return row!;
}

/**
 * The key with this hash when it is usable at `now` (not revoked, not expired), else null.
 * The lookup is by an exact match on a 256-bit hash, so it leaks nothing through timing.
 */
export async function findActiveWebhookKey(
  db: Queryable,
  hash: Uint8Array,
  now: Date,
): Promise<WebhookKeyRow | null> {
  const [row] = await db.query<WebhookKeyRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM webhook_keys
     WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`,
    [hash, now],
  );
  return row ?? null;
}

/** Records that a key was used (at most once a minute per key, to keep the hot path light). */
export async function touchWebhookKey(db: Queryable, id: string, now: Date): Promise<void> {
  await db.query(
    `UPDATE webhook_keys SET last_used_at = $2
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')`,
    [id, now],
  );
}

/** The keys of a user, newest first. */
export function listWebhookKeys(db: Queryable, userId: string): Promise<WebhookKeyRow[]> {
  return db.query<WebhookKeyRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM webhook_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC`,
    [userId],
  );
}
