/**
 * What every webhook does before it reads its fields: the IP allowlist, the content type, the
 * size limit, parsing (TradingView's text/plain bodies are JSON too), the key in the body looked
 * up by hash, Standard Webhooks signatures, the per-key rate limit, and a time budget for the
 * database. Shared by the signal and the bar webhooks so both doors have the same locks.
 */
import type { Context } from "hono";
import { type Queryable, withTimeout } from "../db/client.ts";
import { type KeyAndAccount, touchWebhookKey } from "../db/webhook_keys.ts";
import { ApiError } from "../lib/errors.ts";
import { serializeError } from "../lib/log.ts";
import { MAX_BODY_BYTES, parsePayload, PayloadError } from "../lib/signal.ts";
import { verify } from "../lib/standard_webhooks.ts";
import { sha256Sync } from "../lib/tokens.ts";
import { looksLikeWebhookKey } from "../lib/webhook_key.ts";
import type { AppEnv } from "./_env.ts";
import { clientIp } from "./_middleware.ts";
import { ErrorSchema, json } from "./_openapi.ts";

/**
 * How long a webhook's queries may take together. A connection that hangs instead of failing
 * (a proxy in front of a dead server: the pool reconnects forever and the query just waits) must
 * become a 503 that the sender retries, never a request that does not answer; TradingView gives
 * up after about 3 s anyway. A late commit is harmless: never acknowledged, the retry is a
 * duplicate, and the ingest sweep dispatches it.
 */
export const DB_BUDGET_MS = 2_500;

/** Standard Webhooks headers of a signed request. */
export interface SignatureHeaders {
  id: string;
  timestamp: string;
  signature: string;
}

/** An authenticated webhook request, ready for its own validation. */
export interface AuthenticatedWebhook {
  /** When the request arrived (the injected clock). */
  receivedAt: Date;
  /** The raw body, UTF-8. */
  body: string;
  /** The parsed body. */
  payload: Record<string, unknown>;
  /** The database, failing as unavailable once the request's budget is spent. */
  db: Queryable;
  /** `promise`, failing as unavailable once the request's database budget is spent. */
  budget<T>(promise: Promise<T>): Promise<T>;
  /** When that budget is spent (`performance.now()` ms). */
  deadline: number;
  /**
   * The key and the account named by `alias`; with `cachedKey`, possibly from a moment ago (see
   * {@linkcode AuthenticateOptions.cachedKey}).
   */
  found: KeyAndAccount;
  /** Looks the key and account up again in the database (within the budget); null: gone. */
  refresh(): Promise<KeyAndAccount | null>;
  /** The signature headers when the sender signed. */
  signed: SignatureHeaders | null;
}

/** Options of {@linkcode authenticateWebhook}. */
export interface AuthenticateOptions {
  /** What is received, for error texts: "alert" gives "Cannot accept the alert: …". */
  what: string;
  /** The broker account alias to look up with the key, read from the payload. */
  alias: (payload: Record<string, unknown>) => string;
  /**
   * The key and account may come from memory (no round trip): for a caller that checks them
   * again in the statement that acts on them, and calls `refresh` when that check fails.
   */
  cachedKey?: boolean;
}

/**
 * Runs the checks every webhook shares and throws the {@linkcode ApiError} that answers a
 * failed one; sets `userId` and the rate limit headers on `c`.
 */
export async function authenticateWebhook(
  c: Context<AppEnv>,
  options: AuthenticateOptions,
): Promise<AuthenticatedWebhook> {
  const deps = c.get("deps");
  const { clock, config } = deps;
  const what = options.what;
  const receivedAt = new Date(clock.now());

  const allowed = config.webhook.allowedIps;
  if (allowed.length > 0 && !allowed.includes(clientIp(c))) {
    throw new ApiError(
      "FORBIDDEN",
      `Cannot accept the ${what}: this source address is not allowed`,
    );
  }
  const type = (c.req.header("content-type") ?? "text/plain").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json" && type !== "text/plain" && type !== "") {
    throw new ApiError(
      "UNSUPPORTED_MEDIA_TYPE",
      `Cannot accept the ${what}: content type "${type}" is neither application/json nor text/plain`,
    );
  }
  const body = await readBody(c.req.raw, MAX_BODY_BYTES, what);
  const end = performance.now() + DB_BUDGET_MS;
  const db = budgeted(deps.db, end);
  const budget = <T>(promise: Promise<T>) =>
    withTimeout(promise, Math.max(1, end - performance.now()), "the webhook's query");

  let payload: Record<string, unknown>;
  try {
    payload = parsePayload(body);
  } catch (error) {
    if (error instanceof PayloadError) {
      throw new ApiError("VALIDATION_ERROR", error.message, { details: error.problems });
    }
    throw error;
  }

  const noKey = () =>
    new ApiError(
      "AUTHENTICATION_REQUIRED",
      `Cannot accept the ${what}: a valid webhook key is required in "key"`,
    );
  if (!looksLikeWebhookKey(payload.key)) throw noKey();
  // Concurrent requests share one lookup (a batch); a lone one goes at once.
  const hash = sha256Sync(payload.key);
  const alias = options.alias(payload);
  const found = await budget(
    deps.webhookKeys!.find(hash, alias, receivedAt, { cached: options.cachedKey }),
  );
  if (!found) throw noKey();
  const refresh = () => budget(deps.webhookKeys!.find(hash, alias, receivedAt, { cached: false }));
  const { key } = found;
  const signed = signatureHeaders(c, what);
  if (signed) {
    const problem = await verify(payload.key, signed, body, receivedAt.getTime());
    if (problem) {
      throw new ApiError("AUTHENTICATION_REQUIRED", `Cannot accept the ${what}: ${problem}`);
    }
  }
  c.set("userId", key.userId);

  const limit = await deps.webhookLimiter.hit(`key:${key.id}`);
  const rateHeaders = {
    "X-RateLimit-Limit": String(limit.limit),
    "X-RateLimit-Remaining": String(limit.remaining),
    "X-RateLimit-Reset": String(Math.ceil(limit.resetAt / 1000)),
  };
  if (!limit.allowed) {
    throw new ApiError(
      "RATE_LIMITED",
      `Too many ${what}s: the limit is ${limit.limit} per minute per key`,
      { headers: { ...rateHeaders, "Retry-After": String(limit.retryAfterS) } },
    );
  }
  for (const [k, v] of Object.entries(rateHeaders)) c.header(k, v);

  if (key.lastUsedAt === null || receivedAt.getTime() - key.lastUsedAt.getTime() > 60_000) {
    key.lastUsedAt = receivedAt; // a cached key is shared: the next requests need not touch it
    touchWebhookKey(deps.db, key.id, receivedAt).catch((error) =>
      deps.log.warning("Cannot record webhook key use", {
        key_id: key.id,
        error: serializeError(error),
      })
    );
  }
  return { receivedAt, body, payload, db, budget, deadline: end, found, refresh, signed };
}

/** `db` whose queries fail as unavailable (a 503) once `end` (performance.now()) has passed. */
function budgeted(db: Queryable, end: number): Queryable {
  return {
    query: (text, params) =>
      withTimeout(
        db.query(text, params),
        Math.max(1, end - performance.now()),
        "the webhook's query",
      ),
  };
}

function signatureHeaders(c: Context<AppEnv>, what: string): SignatureHeaders | null {
  const id = c.req.header("webhook-id");
  const timestamp = c.req.header("webhook-timestamp");
  const signature = c.req.header("webhook-signature");
  if (id === undefined && timestamp === undefined && signature === undefined) return null;
  if (!id || !timestamp || !signature) {
    throw new ApiError(
      "AUTHENTICATION_REQUIRED",
      `Cannot accept the ${what}: a signed request needs webhook-id, webhook-timestamp and webhook-signature`,
    );
  }
  return { id, timestamp, signature };
}

/** Reads at most `max` bytes of a body as UTF-8; a longer one is a 413, before it is all read. */
async function readBody(request: Request, max: number, what: string): Promise<string> {
  const declared = request.headers.get("content-length");
  const tooLarge = () =>
    new ApiError("PAYLOAD_TOO_LARGE", `Cannot accept the ${what}: the body exceeds ${max} bytes`);
  if (declared !== null && Number(declared) > max) throw tooLarge();
  if (!request.body) return "";
  // A declared length bounds the body (HTTP framing): read it whole, without a JS stream loop.
  if (declared !== null && /^\d+$/.test(declared)) return decodeBody(await request.bytes(), what);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return decodeBody(bytes, what);
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function decodeBody(bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new ApiError(
      "VALIDATION_ERROR",
      `Cannot accept the ${what}: the body is not valid UTF-8`,
    );
  }
}

/** The refusals both webhook routes document: key, address, size, content type, rate. */
export const WEBHOOK_ERRORS = {
  401: json(ErrorSchema, "Missing or unknown webhook key, or a bad signature"),
  403: json(ErrorSchema, "Source address not allowed"),
  413: json(ErrorSchema, "Body over 64 KiB"),
  415: json(ErrorSchema, "Neither JSON nor text"),
  429: json(ErrorSchema, "More than the per-key limit per minute"),
};
