/**
 * Notification channels (Telegram, Discord) per user and the dead letters of notifications that
 * failed every attempt. A channel's secret (bot token or Discord webhook URL) comes in sealed
 * (lib/crypto.ts) and is read only by the notifier: listings never carry it.
 */
import type { Queryable } from "./client.ts";

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
  const rows = await db.query<Record<string, unknown>>(
    `SELECT ${COLUMNS}, secret FROM notification_channels
     WHERE user_id = $1 AND enabled AND (events IS NULL OR events @> jsonb_build_array($2::text))
     ORDER BY created_at, id`,
    [userId, eventType],
  );
  return rows.map(toSealed);
}

/** Deletes one of `userId`'s channels; false when unknown or another user's. */
export async function deleteChannel(db: Queryable, userId: string, id: string): Promise<boolean> {
  const rows = await db.query(
    "DELETE FROM notification_channels WHERE user_id = $1 AND id = $2 RETURNING id",
    [userId, id],
  );
  return rows.length > 0;
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
