/**
 * Notification channels (Telegram, Discord) per user and the dead letters of notifications that
 * failed every attempt. A channel's secret (bot token or Discord webhook URL) comes in sealed
 * (lib/crypto.ts) and is read only by the notifier: listings never carry it.
 */
import type { Queryable } from "./client.ts";
import { isUuid } from "./users.ts";

/** The kinds of channel. */
export const CHANNEL_KINDS = ["telegram", "discord"] as const;
/** A kind of channel. */
export type ChannelKind = typeof CHANNEL_KINDS[number];

/** A channel as listed: no secret. */
export interface NotificationChannel {
  id: string;
  userId: string;
  kind: ChannelKind;
  name: string;
  /** Telegram's chat id; null for Discord. */
  chatId: string | null;
  /** The event types wanted; null means every type. */
  events: string[] | null;
  enabled: boolean;
  createdAt: Date;
}

/** A channel with its sealed secret, for the notifier only. */
export interface SealedChannel extends NotificationChannel {
  secret: Uint8Array;
}

/** A new channel; `secret` sealed already. */
export interface NewChannel {
  id: string;
  userId: string;
  kind: ChannelKind;
  name: string;
  secret: Uint8Array;
  chatId: string | null;
  events: string[] | null;
  enabled?: boolean;
}

const COLUMNS = `id, user_id AS "userId", kind, name, chat_id AS "chatId", events, enabled,
  created_at AS "createdAt"`;

/** Inserts a channel and returns it (without its secret). */
export async function createChannel(
  db: Queryable,
  channel: NewChannel,
): Promise<NotificationChannel> {
  const rows = await db.query<Record<string, unknown>>(
    `INSERT INTO notification_channels (id, user_id, kind, name, secret, chat_id, events, enabled)
     VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8) RETURNING ${COLUMNS}`,
    [
      channel.id,
      channel.userId,
      channel.kind,
      channel.name,
      channel.secret,
      channel.chatId,
      channel.events === null ? null : JSON.stringify(channel.events),
      channel.enabled ?? true,
    ],
  );
  return toChannel(rows[0]!);
}

/** `userId`'s channels, oldest first, without secrets. */
export async function listChannels(db: Queryable, userId: string): Promise<NotificationChannel[]> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM notification_channels WHERE user_id = $1 ORDER BY created_at, id`,
    [userId],
  );
  return rows.map(toChannel);
}

/** One of `userId`'s channels, without its secret; undefined when unknown or another user's. */
export async function getChannel(
  db: Queryable,
  userId: string,
  id: string,
): Promise<NotificationChannel | undefined> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM notification_channels WHERE user_id = $1 AND id = $2`,
    [userId, id],
  );
  return rows[0] && toChannel(rows[0]);
}

/** One of `userId`'s channels with its sealed secret; undefined when unknown or another user's. */
export async function getSealedChannel(
  db: Queryable,
  userId: string,
  id: string,
): Promise<SealedChannel | undefined> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT ${COLUMNS}, secret FROM notification_channels WHERE user_id = $1 AND id = $2`,
    [userId, id],
  );
  return rows[0] && toSealed(rows[0]);
}

/** `userId`'s enabled channels that want `eventType`, with their sealed secrets. */
export async function channelsForEvent(
  db: Queryable,
  userId: string,
  eventType: string,
): Promise<SealedChannel[]> {
  return (await enabledChannelsOf(db, [userId])).filter((c) => channelWants(c, eventType));
}

/**
 * The enabled channels of every user in `userIds`, with their sealed secrets, oldest first: one
 * query for a burst of events, each then matched with {@linkcode channelWants}.
 */
export async function enabledChannelsOf(
  db: Queryable,
  userIds: readonly string[],
): Promise<SealedChannel[]> {
  const ids = userIds.filter(isUuid); // no other id has a channel
  if (ids.length === 0) return [];
  const rows = await db.query<Record<string, unknown>>(
    `SELECT ${COLUMNS}, secret FROM notification_channels
     WHERE user_id = ANY($1::text::uuid[]) AND enabled
     ORDER BY created_at, id`,
    [`{${ids.join(",")}}`],
  );
  return rows.map(toSealed);
}

/** Whether a channel wants events of `eventType`: enabled, and all types or that one listed. */
export function channelWants(channel: NotificationChannel, eventType: string): boolean {
  return channel.enabled && (channel.events === null || channel.events.includes(eventType));
}

/** Deletes one of `userId`'s channels; false when unknown or another user's. */
export async function deleteChannel(db: Queryable, userId: string, id: string): Promise<boolean> {
  const rows = await db.query(
    "DELETE FROM notification_channels WHERE user_id = $1 AND id = $2 RETURNING id",
    [userId, id],
  );
  return rows.length > 0;
}

/** What an update may change; absent fields stay as they are (the secret never changes). */
export interface ChannelPatch {
  name?: string;
  /** null: every type. */
  events?: string[] | null;
  enabled?: boolean;
  /** Telegram only. */
  chatId?: string;
  /** A new secret, sealed already (a Telegram bot token or a Discord webhook URL). */
  secret?: Uint8Array;
}

/** Updates one of `userId`'s channels; undefined when unknown or another user's. */
export async function updateChannel(
  db: Queryable,
  userId: string,
  id: string,
  patch: ChannelPatch,
): Promise<NotificationChannel | undefined> {
  const rows = await db.query<Record<string, unknown>>(
    `UPDATE notification_channels SET
       name = CASE WHEN $3::boolean THEN $4 ELSE name END,
       events = CASE WHEN $5::boolean THEN $6::text::jsonb ELSE events END,
       enabled = COALESCE($7::boolean, enabled),
       chat_id = CASE WHEN $8::boolean THEN $9 ELSE chat_id END,
       secret = COALESCE($10, secret)
     WHERE user_id = $1 AND id = $2
     RETURNING ${COLUMNS}`,
    [
      userId,
      id,
      patch.name !== undefined,
      patch.name ?? null,
      patch.events !== undefined,
      patch.events ? JSON.stringify(patch.events) : null,
      patch.enabled ?? null,
      patch.chatId !== undefined,
      patch.chatId ?? null,
      patch.secret ?? null,
    ],
  );
  return rows[0] && toChannel(rows[0]);
}

/** A notification that failed every attempt. */
export interface NotificationDeadLetter {
  id: string;
  /** The user's channel; null for an operator channel. */
  channelId: string | null;
  /** The operator channel's kind; null for a user's channel. */
  operator: ChannelKind | null;
  userId: string | null;
  eventType: string;
  /** The rendered text, as it would have been sent. */
  message: string;
  attempts: number;
  lastError: string;
  createdAt: Date;
  replayedAt: Date | null;
}

/** Records a dead letter. */
export async function insertDeadLetter(
  db: Queryable,
  letter: Omit<NotificationDeadLetter, "createdAt" | "replayedAt"> & { createdAt?: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO notification_dead_letters
       (id, channel_id, operator, user_id, event_type, message, attempts, last_error, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, now()))`,
    [
      letter.id,
      letter.channelId,
      letter.operator,
      letter.userId,
      letter.eventType,
      letter.message,
      letter.attempts,
      letter.lastError,
      letter.createdAt ?? null,
    ],
  );
}

/** Dead letters not replayed yet, oldest first; `id` narrows to one. */
export async function pendingDeadLetters(
  db: Queryable,
  options: { id?: string; limit?: number } = {},
): Promise<NotificationDeadLetter[]> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT id, channel_id AS "channelId", operator, user_id AS "userId", event_type AS "eventType",
       message, attempts, last_error AS "lastError", created_at AS "createdAt",
       replayed_at AS "replayedAt"
     FROM notification_dead_letters
     WHERE replayed_at IS NULL AND ($1::uuid IS NULL OR id = $1::uuid)
     ORDER BY created_at, id LIMIT $2`,
    [options.id ?? null, options.limit ?? 1_000],
  );
  return rows.map((r) => ({ ...r, attempts: Number(r.attempts) }) as NotificationDeadLetter);
}

/** Marks a dead letter replayed; false when it was replayed already (or is unknown). */
export async function markReplayed(db: Queryable, id: string, at: Date): Promise<boolean> {
  const rows = await db.query(
    `UPDATE notification_dead_letters SET replayed_at = $2
     WHERE id = $1 AND replayed_at IS NULL RETURNING id`,
    [id, at],
  );
  return rows.length > 0;
}

/** How many dead letters wait for a replay. */
export async function countPendingDeadLetters(db: Queryable): Promise<number> {
  const rows = await db.query<{ n: unknown }>(
    "SELECT count(*) AS n FROM notification_dead_letters WHERE replayed_at IS NULL",
  );
  return Number(rows[0]?.n ?? 0);
}

function toChannel(row: Record<string, unknown>): NotificationChannel {
  const events = typeof row.events === "string" ? JSON.parse(row.events) : row.events;
  return {
    id: row.id as string,
    userId: row.userId as string,
    kind: row.kind as ChannelKind,
    name: row.name as string,
    chatId: (row.chatId as string | null) ?? null,
    events: (events as string[] | null) ?? null,
    enabled: row.enabled as boolean,
    createdAt: row.createdAt as Date,
  };
}

function toSealed(row: Record<string, unknown>): SealedChannel {
  return { ...toChannel(row), secret: row.secret as Uint8Array };
}

/** One account's figures of a UTC day, for the daily summary. */
export type DailyAccountSummary = {
  userId: string;
  /** Null for signals that never reached an account (refused before routing). */
  accountId: string | null;
  alias: string | null;
  signalsReceived: number;
  signalsRejected: number;
  /** Filled orders with a fill on the day. */
  ordersFilled: number;
  /** Sum of the day's `fills.realized_pnl`, exact, in PostgreSQL's numeric text. */
  realizedPnl: string;
  /** Positions with a non-zero quantity now. */
  openPositions: number;
};

/**
 * The figures of the UTC day that starts at `dayStart`, per account, of every user with an
 * enabled channel that wants `eventType`; accounts with nothing to tell are left out.
 */
export async function dailySummaries(
  db: Queryable,
  dayStart: Date,
  eventType: string,
): Promise<DailyAccountSummary[]> {
  const dayEnd = new Date(dayStart.getTime() + 86_400_000);
  return await db.query<DailyAccountSummary>(
    `WITH wanting AS (
       SELECT DISTINCT user_id FROM notification_channels
       WHERE enabled AND (events IS NULL OR events @> jsonb_build_array($3::text))
     ), s AS (
       SELECT user_id, account_id, count(*)::int AS received,
              (count(*) FILTER (WHERE status = 'rejected'))::int AS rejected
       FROM signals
       WHERE received_at >= $1 AND received_at < $2 AND user_id IN (SELECT user_id FROM wanting)
       GROUP BY user_id, account_id
     ), f AS (
       SELECT f.account_id, (count(DISTINCT f.order_id) FILTER (WHERE o.status = 'filled'))::int
                AS filled,
              sum(f.realized_pnl) AS pnl
       FROM fills f JOIN orders o ON o.id = f.order_id
       WHERE f.filled_at >= $1 AND f.filled_at < $2 AND f.user_id IN (SELECT user_id FROM wanting)
       GROUP BY f.account_id
     ), p AS (
       SELECT account_id, count(*)::int AS open FROM positions
       WHERE quantity <> 0 AND user_id IN (SELECT user_id FROM wanting)
       GROUP BY account_id
     )
     SELECT * FROM (
       SELECT a.user_id AS "userId", a.id AS "accountId", a.alias,
              coalesce(s.received, 0) AS "signalsReceived",
              coalesce(s.rejected, 0) AS "signalsRejected",
              coalesce(f.filled, 0) AS "ordersFilled",
              coalesce(f.pnl, 0)::text AS "realizedPnl",
              coalesce(p.open, 0) AS "openPositions"
       FROM broker_accounts a
       LEFT JOIN s ON s.account_id = a.id
       LEFT JOIN f ON f.account_id = a.id
       LEFT JOIN p ON p.account_id = a.id
       WHERE a.user_id IN (SELECT user_id FROM wanting)
         AND (s.received IS NOT NULL OR f.account_id IS NOT NULL OR p.open IS NOT NULL)
       UNION ALL
       SELECT s.user_id, NULL, NULL, s.received, s.rejected, 0, '0', 0
       FROM s WHERE s.account_id IS NULL
     ) summary
     ORDER BY "userId", "accountId" NULLS LAST`,
    [dayStart, dayEnd, eventType],
  );
}
