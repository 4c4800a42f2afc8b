/**
 * Webhook key management for the authenticated trader: list, create, rotate and revoke their
 * own keys. A key in clear is answered once, when it is made (`Cache-Control: no-store`); after
 * that only its prefix is known. Every answer carries the webhook URL and a ready-to-paste
 * TradingView alert message. Every query is scoped by the caller's user id: another user's key,
 * like an unknown or malformed id, is 404.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  createWebhookKey,
  listWebhookKeys,
  MAX_ACTIVE_WEBHOOK_KEYS,
  revokeWebhookKey,
  rotateWebhookKey,
  WebhookKeyInactiveError,
  WebhookKeyLimitError,
  type WebhookKeyRow,
} from "../db/webhook_keys.ts";
import { alertMessage, keyPlaceholder } from "../lib/alert_message.ts";
import { ApiError } from "../lib/errors.ts";
import { uuidv7 } from "../lib/ids.ts";
import { generateWebhookKey, webhookKeyStatus } from "../lib/webhook_key.ts";
import { auditActor } from "./_audit.ts";
import { type AuthEnv, authUser } from "./_auth.ts";
import {
  Alias,
  ERRORS,
  ErrorSchema,
  IdParam,
  json,
  jsonBody,
  NOT_FOUND,
  SECURED,
  validationHook,
} from "./_openapi.ts";

/** Where TradingView posts alerts, relative to the public URL. */
const WEBHOOK_PATH = "/api/v1/webhooks/tradingview";
const DAY_MS = 86_400_000;
const MAX_EXPIRES_DAYS = 3650;
const MAX_GRACE_MINUTES = 7 * 24 * 60;

// ---- schemas ----------------------------------------------------------------------------

const AccountQuery = z.object({
  account: Alias.optional()
    .openapi({ description: 'The broker account the alert message names (default "paper")' }),
});

const CreateBody = z.strictObject({
  name: z.string().trim().min(1, "Must not be empty").max(100, "Must be at most 100 characters")
    .openapi({ example: "TradingView" }),
  expires_in_days: z.number().int().min(1).max(MAX_EXPIRES_DAYS).nullable().optional().openapi({
    description: "Days until the key expires; null: never. Default WEBHOOK_KEY_EXPIRES_DAYS (180)",
  }),
}).openapi("WebhookKeyCreateRequest");

const RotateBody = z.strictObject({
  grace_minutes: z.number().int().min(0).max(MAX_GRACE_MINUTES).optional().openapi({
    description: "How long the old key keeps working, so alerts can be updated; default 0 " +
      "(revoked at once), at most a week",
  }),
}).openapi("WebhookKeyRotateRequest");

const nstr = z.string().nullable();

const WebhookKey = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string().openapi({ example: "whk_AbCd1234" }),
  created_at: z.string(),
  last_used_at: nstr,
  expires_at: nstr.openapi({ description: "Null: never expires" }),
  revoked_at: nstr,
  replaced_by: nstr.openapi({ description: "The key a rotation made in this one's place" }),
  status: z.enum(["active", "expiring", "expired", "revoked"]).openapi({
    description: "`expiring`: usable, but expires within 7 days",
  }),
  webhook_url: z.string().openapi({ example: `https://trendedge.example.com${WEBHOOK_PATH}` }),
  alert_message: z.string().openapi({
    description: "A TradingView alert message for this key; the key itself is a placeholder " +
      "except in the answer that created it",
  }),
}).openapi("WebhookKey");

const NewWebhookKey = WebhookKey.extend({
  key: z.string().openapi({ description: "The key in clear: shown only this once" }),
}).openapi("NewWebhookKey");

const RotatedWebhookKey = NewWebhookKey.extend({
  replaced: WebhookKey.openapi({ description: "The old key, revoked or in its grace period" }),
}).openapi("RotatedWebhookKey");

const CONFLICT = {
  409: json(
    ErrorSchema,
    `The key is revoked, expired or replaced, or ${MAX_ACTIVE_WEBHOOK_KEYS} keys are active`,
  ),
};

// ---- routes -----------------------------------------------------------------------------

/** The webhook key routes; mount with `app.route("/", keys)`. */
export const keys = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

keys.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/webhook-keys",
    tags: ["webhook keys"],
    summary: "The caller's webhook keys, newest first, with a TradingView alert message each",
    ...SECURED,
    request: { query: AccountQuery },
    responses: {
      200: json(z.object({ data: z.array(WebhookKey) }).openapi("WebhookKeys"), "The keys"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const { account } = c.req.valid("query");
    const rows = await listWebhookKeys(c.get("deps").db, authUser(c).userId);
    const now = c.get("deps").clock.now();
    const url = webhookUrl(c);
    return c.json({ data: rows.map((row) => presentWebhookKey(row, { now, url, account })) }, 200);
  },
);

keys.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/webhook-keys",
    tags: ["webhook keys"],
    summary: "Create a webhook key; the key is in the answer, and only there",
    ...SECURED,
    request: { query: AccountQuery, ...jsonBody(CreateBody) },
    responses: { 201: json(NewWebhookKey, "The new key"), ...ERRORS, ...CONFLICT },
  }),
  async (c) => {
    const { name, expires_in_days } = c.req.valid("json");
    const { account } = c.req.valid("query");
    const { db, clock, config } = c.get("deps");
    const now = clock.now();
    const days = expires_in_days === undefined
      ? config.auth.webhookKeyExpiresDays
      : expires_in_days;
    const generated = await generateWebhookKey();
    let row;
    try {
      row = await createWebhookKey(db, {
        userId: authUser(c).userId,
        name,
        key: { id: uuidv7(now), prefix: generated.prefix, hash: generated.hash },
        expiresAt: days === null ? null : new Date(now + days * DAY_MS),
        now: new Date(now),
        actor: auditActor(c),
      });
    } catch (error) {
      if (error instanceof WebhookKeyLimitError) throw new ApiError("CONFLICT", error.message);
      throw error;
    }
    c.header("Cache-Control", "no-store");
    const key = generated.key;
    return c.json(
      { ...presentWebhookKey(row, { now, url: webhookUrl(c), account, key }), key },
      201,
    );
  },
);

keys.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/webhook-keys/{id}/rotate",
    tags: ["webhook keys"],
    summary: "Replace a key with a new one; the old one stops at once or after a grace period",
    ...SECURED,
    request: {
      params: IdParam,
      query: AccountQuery,
      body: { required: false, content: { "application/json": { schema: RotateBody } } },
    },
    responses: {
      201: json(RotatedWebhookKey, "The new key, and the old one"),
      ...ERRORS,
      ...NOT_FOUND,
      ...CONFLICT,
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { account } = c.req.valid("query");
    const graceMinutes = c.req.valid("json").grace_minutes ?? 0;
    const { db, clock } = c.get("deps");
    const now = clock.now();
    const generated = await generateWebhookKey();
    let result;
    try {
      result = await rotateWebhookKey(db, {
        userId: authUser(c).userId,
        id,
        key: { id: uuidv7(now), prefix: generated.prefix, hash: generated.hash },
        graceMs: graceMinutes * 60_000,
        now: new Date(now),
        actor: auditActor(c),
      });
    } catch (error) {
      if (error instanceof WebhookKeyInactiveError || error instanceof WebhookKeyLimitError) {
        throw new ApiError("CONFLICT", error.message);
      }
      throw error;
    }
    if (!result) throw new ApiError("NOT_FOUND", `Cannot find webhook key "${id}"`);
    const url = webhookUrl(c);
    c.header("Cache-Control", "no-store");
    const key = generated.key;
    return c.json({
      ...presentWebhookKey(result.created, { now, url, account, key }),
      key,
      replaced: presentWebhookKey(result.old, { now, url, account }),
    }, 201);
  },
);

keys.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/webhook-keys/{id}",
    tags: ["webhook keys"],
    summary: "Revoke a key at once (revoking a revoked key is a no-op)",
    ...SECURED,
    request: { params: IdParam },
    responses: { 204: { description: "Revoked" }, ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { db, clock, log } = c.get("deps");
    const { userId } = authUser(c);
    const result = await revokeWebhookKey(db, {
      userId,
      id,
      now: new Date(clock.now()),
      actor: auditActor(c),
    });
    if (!result) throw new ApiError("NOT_FOUND", `Cannot find webhook key "${id}"`);
    if (result.revoked) {
      log.info("Webhook key revoked", {
        request_id: c.get("requestId"),
        user_id: userId,
        key_id: result.row.id,
        key_prefix: result.row.prefix,
      });
    }
    return c.body(null, 204);
  },
);

// ---- helpers ----------------------------------------------------------------------------

/** A webhook key as the API answers it. */
export type WebhookKeyView = ReturnType<typeof presentWebhookKey>;

/** A key as answered: its row, status, webhook URL and alert message (for `key`, when known). */
export function presentWebhookKey(
  row: WebhookKeyRow,
  options: { now: number; url: string; account?: string; key?: string },
) {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    created_at: row.createdAt.toISOString(),
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
    expires_at: row.expiresAt?.toISOString() ?? null,
    revoked_at: row.revokedAt?.toISOString() ?? null,
    replaced_by: row.replacedBy,
    status: webhookKeyStatus(row, options.now),
    webhook_url: options.url,
    alert_message: alertMessage(options.key ?? keyPlaceholder(row.prefix), {
      account: options.account,
    }),
  };
}

/** PUBLIC_URL's webhook URL, or else the one of the origin this request came to. */
export function webhookUrl(c: Context<AuthEnv>): string {
  const { publicUrl, trustProxy } = c.get("deps").config;
  if (publicUrl) return publicUrl.replace(/\/+$/, "") + WEBHOOK_PATH;
  const url = new URL(c.req.url);
  if (trustProxy) {
    const proto = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim();
    const host = c.req.header("x-forwarded-host")?.split(",")[0]?.trim();
    if (proto === "http" || proto === "https") url.protocol = `${proto}:`;
    if (host) url.host = host;
  }
  return url.origin + WEBHOOK_PATH;
}
