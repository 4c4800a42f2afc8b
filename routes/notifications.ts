/**
 * Notification channels of the authenticated trader: list, create, update (name, events,
 * enabled, Telegram chat, a new bot token or webhook URL), delete, and send a test message.
 * Secrets (Telegram bot token, Discord webhook URL) are write-only: sealed with the keyring on the
 * way in, never answered, never logged. Only Discord's own webhook URLs are accepted. Every query
 * is scoped by the caller's user id: another user's channel, like an unknown or malformed id, is
 * 404. Changes are audited in the same transaction.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { audit } from "../db/audit.ts";
import {
  createChannel,
  deleteChannel,
  getChannel,
  listChannels,
  type NotificationChannel,
  updateChannel,
} from "../db/notifications.ts";
import { isUuid } from "../db/queue.ts";
import { ApiError, ServiceUnavailableError } from "../lib/errors.ts";
import { uuidv7 } from "../lib/ids.ts";
import type { SendOutcome } from "../lib/notify.ts";
import { NOTIFY_EVENT_TYPES, validateDiscordWebhookUrl } from "../lib/notify.ts";
import { auditActor } from "./_audit.ts";
import { type AuthEnv, authUser } from "./_auth.ts";
import { ERRORS, IdParam, json, jsonBody, NOT_FOUND, SECURED, validationHook } from "./_openapi.ts";

const Events = z.array(z.enum(NOTIFY_EVENT_TYPES)).max(NOTIFY_EVENT_TYPES.length).nullable()
  .optional().openapi({ description: "Event types to send; null or absent: every type" });

const CHAT_ID = z.string().regex(
  /^-?\d{1,20}$|^@[A-Za-z0-9_]{5,64}$/,
  "Must be a chat id or @name",
);

const BOT_TOKEN = z.string().regex(
  /^\d{1,20}:[A-Za-z0-9_-]{20,100}$/,
  "Must be a Telegram bot token",
);

const CreateBody = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("telegram"),
    name: z.string().trim().min(1).max(100),
    bot_token: BOT_TOKEN.openapi({ description: "Write-only" }),
    chat_id: CHAT_ID,
    events: Events,
  }),
  z.strictObject({
    kind: z.literal("discord"),
    name: z.string().trim().min(1).max(100),
    webhook_url: z.string().max(300).openapi({
      description: "https://discord.com/api/webhooks/{id}/{token}; write-only",
    }),
    events: Events,
  }),
]).openapi("NotificationChannelCreateRequest");

const UpdateBody = z.strictObject({
  name: z.string().trim().min(1).max(100).optional(),
  events: Events,
  enabled: z.boolean().optional().openapi({ description: "false: the channel gets nothing" }),
  chat_id: CHAT_ID.optional().openapi({ description: "Telegram channels only" }),
  bot_token: BOT_TOKEN.optional().openapi({
    description: "A new bot token (Telegram channels only; write-only)",
  }),
  webhook_url: z.string().max(300).optional().openapi({
    description: "A new webhook URL (Discord channels only; write-only)",
  }),
}).refine((body) => Object.keys(body).length > 0, "Give at least one field to change")
  .openapi("NotificationChannelUpdateRequest");

const Channel = z.object({
  id: z.string(),
  kind: z.enum(["telegram", "discord"]),
  name: z.string(),
  chat_id: z.string().nullable(),
  events: z.array(z.string()).nullable(),
  enabled: z.boolean(),
  created_at: z.string(),
}).openapi("NotificationChannel");

const TestResult = z.object({
  ok: z.boolean(),
  error: z.string().optional().openapi({ description: "What the service answered" }),
}).openapi("NotificationTestResult");

/** The notification channel routes; mount with `app.route("/", notifications)`. */
export const notifications = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

notifications.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/notification-channels",
    tags: ["notifications"],
    summary: "The caller's notification channels (secrets are never shown)",
    ...SECURED,
    responses: {
      200: json(z.object({ data: z.array(Channel) }).openapi("NotificationChannels"), "Channels"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const rows = await listChannels(c.get("deps").db, authUser(c).userId);
    return c.json({ data: rows.map(present) }, 200);
  },
);

notifications.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/notification-channels",
    tags: ["notifications"],
    summary: "Add a Telegram chat or a Discord webhook",
    ...SECURED,
    request: jsonBody(CreateBody),
    responses: { 201: json(Channel, "The new channel"), ...ERRORS },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const { db, clock, keyring } = c.get("deps");
    const { userId } = authUser(c);
    let secret: string;
    if (body.kind === "discord") {
      try {
        secret = validateDiscordWebhookUrl(body.webhook_url);
      } catch (error) {
        throw new ApiError("VALIDATION_ERROR", (error as Error).message);
      }
    } else {
      secret = body.bot_token;
    }
    const sealed = await keyring.encrypt(secret);
    const channel = await db.transaction(async (tx) => {
      const row = await createChannel(tx, {
        id: uuidv7(clock.now()),
        userId,
        kind: body.kind,
        name: body.name,
        secret: sealed,
        chatId: body.kind === "telegram" ? body.chat_id : null,
        events: body.events ?? null,
      });
      await audit(tx, {
        ...auditActor(c),
        action: "notification_channel.created",
        targetType: "notification_channel",
        targetId: row.id,
        data: { kind: row.kind, name: row.name, events: row.events },
      });
      return row;
    });
    return c.json(present(channel), 201);
  },
);

notifications.openapi(
  createRoute({
    method: "patch",
    path: "/api/v1/notification-channels/{id}",
    tags: ["notifications"],
    summary:
      "Rename a channel, choose its events, disable or enable it, move a Telegram chat, or replace its secret",
    description:
      "A new bot_token (Telegram) or webhook_url (Discord) replaces the stored one, sealed like on " +
      "creation and never answered; the audit log records that it changed, not what it is.",
    ...SECURED,
    request: { params: IdParam, ...jsonBody(UpdateBody) },
    responses: { 200: json(Channel, "The channel as it is now"), ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { bot_token: botToken, webhook_url: webhookUrl, ...fields } = c.req.valid("json");
    const { db, keyring } = c.get("deps");
    const { userId } = authUser(c);
    const wrongKind = (field: string, kind: string, what: string) =>
      new ApiError("VALIDATION_ERROR", `Only a ${kind} channel has ${what}`, {
        details: [{ field, message: `Only a ${kind} channel has ${what}` }],
      });
    let secret: string | undefined = botToken;
    if (webhookUrl !== undefined) {
      try {
        secret = validateDiscordWebhookUrl(webhookUrl);
      } catch (error) {
        const message = (error as Error).message;
        throw new ApiError("VALIDATION_ERROR", message, {
          details: [{ field: "webhook_url", message }],
        });
      }
    }
    const sealed = secret === undefined ? undefined : await keyring.encrypt(secret);
    const channel = isUuid(id) && await db.transaction(async (tx) => {
      const before = await getChannel(tx, userId, id);
      if (!before) return undefined;
      if (before.kind !== "telegram") {
        if (fields.chat_id !== undefined) throw wrongKind("chat_id", "Telegram", "a chat id");
        if (botToken !== undefined) throw wrongKind("bot_token", "Telegram", "a bot token");
      }
      if (before.kind !== "discord" && webhookUrl !== undefined) {
        throw wrongKind("webhook_url", "Discord", "a webhook URL");
      }
      const row = await updateChannel(tx, userId, id, {
        name: fields.name,
        events: fields.events,
        enabled: fields.enabled,
        chatId: fields.chat_id,
        secret: sealed,
      });
      await audit(tx, {
        ...auditActor(c),
        action: "notification_channel.updated",
        targetType: "notification_channel",
        targetId: id,
        // That the secret changed, never what it is.
        data: sealed === undefined ? fields : { ...fields, secret_changed: true },
      });
      return row;
    });
    if (!channel) throw new ApiError("NOT_FOUND", `Cannot find notification channel "${id}"`);
    return c.json(present(channel), 200);
  },
);

notifications.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/notification-channels/{id}",
    tags: ["notifications"],
    summary: "Remove a channel",
    ...SECURED,
    request: { params: IdParam },
    responses: { 204: { description: "Removed" }, ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { db } = c.get("deps");
    const { userId } = authUser(c);
    const deleted = isUuid(id) && await db.transaction(async (tx) => {
      if (!await deleteChannel(tx, userId, id)) return false;
      await audit(tx, {
        ...auditActor(c),
        action: "notification_channel.deleted",
        targetType: "notification_channel",
        targetId: id,
      });
      return true;
    });
    if (!deleted) throw new ApiError("NOT_FOUND", `Cannot find notification channel "${id}"`);
    return c.body(null, 204);
  },
);

notifications.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/notification-channels/{id}/test",
    tags: ["notifications"],
    summary: "Send a test message to a channel now, and say how the service answered",
    ...SECURED,
    request: { params: IdParam },
    responses: { 200: json(TestResult, "The service's answer"), ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { notifier } = c.get("deps");
    if (!notifier) throw new ServiceUnavailableError("Cannot send a test message: no notifier");
    const { userId } = authUser(c);
    const outcome = isUuid(id)
      ? await notifier.ask<SendOutcome | undefined>(
        (reply) => ({ type: "test", userId, channelId: id, reply }),
        { timeoutMs: 15_000 },
      )
      : undefined;
    if (!outcome) throw new ApiError("NOT_FOUND", `Cannot find notification channel "${id}"`);
    return c.json(outcome.ok ? { ok: true } : { ok: false, error: outcome.error }, 200);
  },
);

function present(row: NotificationChannel) {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    chat_id: row.chatId,
    events: row.events,
    enabled: row.enabled,
    created_at: row.createdAt.toISOString(),
  };
}
