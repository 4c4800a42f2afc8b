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
            a.id AS "accountId", a.broker, a.symbol_map AS "symbolMap", a.micro_futures AS "microFutures"
     FROM webhook_keys k
     LEFT JOIN broker_accounts a ON a.user_id = k.user_id AND a.alias = $3
     WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)`,
    [hash, now, alias],
  );
  if (!row) return null;
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
