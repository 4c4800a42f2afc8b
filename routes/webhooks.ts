/**
 * `POST /api/v1/webhooks/tradingview` — the front door of the hot path. TradingView cannot set
 * headers, sends text/plain unless the message is exact JSON, waits 3 s and resends only after
 * a 5xx. So: the key travels in the body, both content types are read the same way, and the
 * answer is 202 only once the signal is committed (a database outage is a 503, which
 * TradingView retries). Duplicates answer 200 with the first signal's id.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { isDbUnavailable, type Queryable } from "../db/client.ts";
import { rejectSignal, type SignalEnvelope } from "../db/signals.ts";
import type { KeyAndAccount } from "../db/webhook_keys.ts";
import { ApiError, type ErrorDetail } from "../lib/errors.ts";
import { uuidv7 } from "../lib/ids.ts";
import { serializeError } from "../lib/log.ts";
import { dedupKey, redactKey, type SignalInput, validateSignal } from "../lib/signal.ts";
import { mapSymbol, SymbolError } from "../lib/symbols.ts";
import type { AppEnv } from "./_env.ts";
import { type AuthenticatedWebhook, authenticateWebhook, WEBHOOK_ERRORS } from "./_webhook_auth.ts";
import { ErrorSchema, validationHook } from "./_openapi.ts";

/** Signed senders' replays are refused for at least this long (twice the signature tolerance). */
const SIGNED_DEDUP_WINDOW_MS = 10 * 60_000;
const Accepted = z.object({ signal_id: z.string() }).openapi("SignalAccepted");
const Duplicate = z.object({ duplicate: z.literal(true), signal_id: z.string() }).openapi(
  "SignalDuplicate",
);

const AlertPayload = z.object({
  key: z.string().openapi({ description: "Your webhook key (whk_…)" }),
  ticker: z.string().openapi({
    example: "NASDAQ:AAPL",
    description: "With or without exchange prefix: AAPL, BTCUSD, NQ1!",
  }),
  action: z.enum(["buy", "sell", "long", "short", "close", "exit", "flat"]).openapi({
    description: 'Or "{{strategy.order.action}}"',
  }),
  quantity: z.union([z.number(), z.string()]).optional().openapi({
    description: "Or contracts; required to open",
  }),
  contracts: z.union([z.number(), z.string()]).optional(),
  order_type: z.enum(["market", "limit", "stop", "stop_limit"]).optional(),
  price: z.union([z.number(), z.string()]).optional().openapi({
    description: '"{{close}}": reference price for paper fills',
  }),
  limit_price: z.union([z.number(), z.string()]).optional(),
  stop_price: z.union([z.number(), z.string()]).optional(),
  take_profit: z.union([z.number(), z.string()]).optional(),
  stop_loss: z.union([z.number(), z.string()]).optional(),
  time_in_force: z.enum(["day", "gtc", "ioc", "fok", "opg", "cls"]).optional(),
  id: z.string().optional().openapi({ description: "Your alert id: the dedup key when given" }),
  account: z.string().optional().openapi({ description: 'Broker account alias (default "paper")' }),
  strategy: z.record(z.string(), z.unknown()).optional(),
  comment: z.string().optional(),
  time: z.string().optional().openapi({ description: '"{{timenow}}"' }),
}).openapi("TradingViewAlert");

/** The webhook sub-app. */
export const webhooks = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

webhooks.openAPIRegistry.registerPath(
  createRoute({
    method: "post",
    path: "/api/v1/webhooks/tradingview",
    tags: ["webhooks"],
    summary: "Receive a TradingView alert",
    description:
      "Body as application/json or text/plain (TradingView sends either). The key is in the body. " +
      "Senders that can sign may add Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature), " +
      "signed with the webhook key as the secret.",
    request: {
      body: {
        // Documented only: the handler reads the raw body itself (TradingView's text/plain).
        content: {
          "application/json": { schema: AlertPayload },
          "text/plain": { schema: z.string() },
        },
        required: true,
      },
    },
    responses: {
      202: {
        description: "Accepted: committed, and on its way to the broker",
        content: { "application/json": { schema: Accepted } },
      },
      200: {
        description: "A duplicate of a signal accepted within the window",
        content: { "application/json": { schema: Duplicate } },
      },
      400: {
        description: "Invalid alert (journaled as rejected when the key is valid)",
        content: { "application/json": { schema: ErrorSchema } },
      },
      ...WEBHOOK_ERRORS,
      422: {
        description: "Unknown account or unmappable symbol (journaled as rejected)",
        content: { "application/json": { schema: ErrorSchema } },
      },
      503: {
        description: "Database unavailable: nothing was accepted; retry",
        content: { "application/json": { schema: ErrorSchema } },
      },
    },
  }),
);
// The handler reads the raw body itself: TradingView's text/plain bodies are JSON too.
webhooks.post("/api/v1/webhooks/tradingview", receive);

async function receive(c: Context<AppEnv>): Promise<Response> {
  const deps = c.get("deps");
  const { config } = deps;
  // The account alias is looked up with the key; it is validated below. The key and account may
  // come from memory: the statement that accepts the signal checks them again (`check`), and a
  // refusal, which journals under the key's user, looks them up afresh first.
  const auth = await authenticateWebhook(c, {
    what: "alert",
    alias: (payload) =>
      typeof payload.account === "string" ? payload.account.trim().toLowerCase() : "paper",
    cachedKey: true,
  });
  const { receivedAt, body, payload, db, budget, signed } = auth;
  const id = uuidv7(receivedAt.getTime());
  const validation = validateSignal(payload);
  const dedup = !validation.ok ? "" : signed ? `webhook-id:${signed.id}` : await dedupKey(
    validation.signal,
  );
  let found = auth.found;
  let fresh = false;
  for (let lookups = 0;; lookups++) {
    const { key, account } = found;
    const envelope: SignalEnvelope = {
      id,
      userId: key.userId,
      keyId: key.id,
      accountId: account?.id ?? null,
      source: signed ? "signed" : "tradingview",
      rawBody: redactKey(body, payload),
      receivedAt,
    };
    const decided = decide(validation, found, receivedAt);
    if ("refuse" in decided) {
      if (!fresh) {
        found = await freshKey(auth);
        fresh = true;
        continue;
      }
      const { code, message, details, signal } = decided.refuse;
      // Only a refusal past the account check (an unmappable symbol) names the account.
      if (code === "VALIDATION_ERROR" || !account) envelope.accountId = null;
      return await refuse(c, db, envelope, signal, code, message, details);
    }
    const { signal, symbol } = decided;
    // Committed with whatever other alerts arrive meanwhile (group commit); answered only after.
    const result = await budget(deps.signals!.accept({
      envelope,
      signal,
      dedupKey: dedup,
      windowMs: signed
        ? Math.max(SIGNED_DEDUP_WINDOW_MS, config.webhook.dedupWindowMs)
        : config.webhook.dedupWindowMs,
      symbol,
      deadline: auth.deadline,
      check: {
        alias: signal.account,
        broker: account!.broker,
        symbolMap: account!.symbolMap,
        microFutures: account!.microFutures,
      },
    })).catch((error) => {
      // While the database is unreachable, no key is answered from memory: a request waits on a
      // lookup instead of queueing a statement that could commit, unacknowledged, later.
      if (isDbUnavailable(error)) deps.webhookKeys!.distrust();
      throw error;
    });
    if ("stale" in result) {
      // The key or the account changed since they were read: read them again (twice at most).
      if (lookups >= 2) {
        throw new ApiError(
          "SERVICE_UNAVAILABLE",
          "Cannot accept the alert: its broker account is changing; try again shortly",
          { headers: { "Retry-After": "1" } },
        );
      }
      found = await freshKey(auth);
      fresh = true;
      continue;
    }
    if (result.duplicate) {
      deps.log.info("Duplicate signal", { signal_id: result.signalId, user_id: key.userId });
      return c.json({ duplicate: true, signal_id: result.signalId }, 200);
    }

    // Committed: from here on nothing may fail the request. Dispatch is best effort; the ingest
    // sweep re-dispatches a signal whose dispatch is lost.
    deps.bus.publish({
      type: "signal.received",
      userId: key.userId,
      accountId: account!.id,
      signalId: result.signalId,
      at: receivedAt.toISOString(),
      data: { ticker: signal.ticker, symbol, action: signal.action, quantity: signal.quantity },
    });
    deps.ingest.tell({ type: "dispatch", signalId: result.signalId, accountId: account!.id })
      .catch((error) =>
        deps.log.warning("Cannot dispatch signal now; the sweep will", {
          signal_id: result.signalId,
          error: serializeError(error),
        })
      );
    return c.json({ signal_id: result.signalId }, 202);
  }
}

/** The key and account afresh from the database; a key gone meanwhile answers 401. */
async function freshKey(auth: AuthenticatedWebhook): Promise<KeyAndAccount> {
  const found = await auth.refresh();
  if (!found) {
    throw new ApiError(
      "AUTHENTICATION_REQUIRED",
      'Cannot accept the alert: a valid webhook key is required in "key"',
    );
  }
  return found;
}

/** Why an alert is refused at the door, to journal and answer. */
interface Refusal {
  code: "VALIDATION_ERROR" | "UNPROCESSABLE_ENTITY";
  message: string;
  details: ErrorDetail[];
  /** Null when the payload did not validate. */
  signal: SignalInput | null;
}

/** The signal and its broker symbol for `found`'s account, or why it is refused. */
function decide(
  validation: ReturnType<typeof validateSignal>,
  found: KeyAndAccount,
  receivedAt: Date,
): { signal: SignalInput; symbol: string } | { refuse: Refusal } {
  if (!validation.ok) {
    return {
      refuse: {
        code: "VALIDATION_ERROR",
        message: "Cannot accept the alert: invalid fields",
        details: validation.problems,
        signal: null,
      },
    };
  }
  const { signal } = validation;
  const account = found.account;
  if (!account) {
    return {
      refuse: {
        code: "UNPROCESSABLE_ENTITY",
        message: `Cannot accept the alert: there is no broker account "${signal.account}"`,
        details: [{
          field: "account",
          message: `No broker account "${signal.account}"; create it or use "paper"`,
        }],
        signal,
      },
    };
  }
  try {
    const symbol = mapSymbol(signal.ticker, {
      broker: account.broker,
      overrides: account.symbolMap,
      microFutures: account.microFutures,
      now: receivedAt,
    }).symbol;
    return { signal, symbol };
  } catch (error) {
    if (!(error instanceof SymbolError)) throw error;
    return {
      refuse: {
        code: "UNPROCESSABLE_ENTITY",
        message: error.message,
        details: [{ field: "ticker", message: error.message }],
        signal,
      },
    };
  }
}

/** Journals a refused signal so the trader can see why, publishes it, and throws the answer. */
async function refuse(
  c: Context<AppEnv>,
  db: Queryable,
  envelope: SignalEnvelope,
  signal: SignalInput | null,
  code: "VALIDATION_ERROR" | "UNPROCESSABLE_ENTITY",
  message: string,
  details: ErrorDetail[],
): Promise<never> {
  const deps = c.get("deps");
  await rejectSignal(db, envelope, signal, message, details);
  deps.bus.publish({
    type: "signal.rejected",
    userId: envelope.userId,
    accountId: envelope.accountId ?? undefined,
    signalId: envelope.id,
    at: envelope.receivedAt.toISOString(),
    data: { reason: message, details },
  });
  throw new ApiError(code, message, { details });
}
