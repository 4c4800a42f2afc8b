/**
 * `POST /api/v1/webhooks/tradingview` — the front door of the hot path. TradingView cannot set
 * headers, sends text/plain unless the message is exact JSON, waits 3 s and resends only after
 * a 5xx. So: the key travels in the body, both content types are read the same way, and the
 * answer is 202 only once the signal is committed (a database outage is a 503, which
 * TradingView retries). Duplicates answer 200 with the first signal's id.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Queryable } from "../db/client.ts";
import { rejectSignal, type SignalEnvelope } from "../db/signals.ts";
import { ApiError, type ErrorDetail } from "../lib/errors.ts";
import { uuidv7 } from "../lib/ids.ts";
import { serializeError } from "../lib/log.ts";
import { dedupKey, redactKey, type SignalInput, validateSignal } from "../lib/signal.ts";
import { mapSymbol, SymbolError } from "../lib/symbols.ts";
import type { AppEnv } from "./_env.ts";
import { authenticateWebhook, WEBHOOK_ERRORS } from "./_webhook_auth.ts";
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
  // The account alias is looked up with the key in one round trip; it is validated below.
  const { receivedAt, body, payload, db, budget, found, signed } = await authenticateWebhook(c, {
    what: "alert",
    alias: (payload) =>
      typeof payload.account === "string" ? payload.account.trim().toLowerCase() : "paper",
  });
  const { key } = found;

  const envelope: SignalEnvelope = {
    id: uuidv7(receivedAt.getTime()),
    userId: key.userId,
    keyId: key.id,
    accountId: null,
    source: signed ? "signed" : "tradingview",
    rawBody: redactKey(body, payload),
    receivedAt,
  };
  const validation = validateSignal(payload);
  if (!validation.ok) {
    await refuse(
      c,
      db,
      envelope,
      null,
      "VALIDATION_ERROR",
      "Cannot accept the alert: invalid fields",
      validation.problems,
    );
  }
  const signal = (validation as { ok: true; signal: SignalInput }).signal;
  const account = found.account;
  if (!account) {
    await refuse(
      c,
      db,
      envelope,
      signal,
      "UNPROCESSABLE_ENTITY",
      `Cannot accept the alert: there is no broker account "${signal.account}"`,
      [
        {
          field: "account",
          message: `No broker account "${signal.account}"; create it or use "paper"`,
        },
      ],
    );
  }
  envelope.accountId = account!.id;
  let symbol: string;
  try {
    symbol = mapSymbol(signal.ticker, {
      broker: account!.broker,
      overrides: account!.symbolMap,
      microFutures: account!.microFutures,
      now: receivedAt,
    }).symbol;
  } catch (error) {
    if (!(error instanceof SymbolError)) throw error;
    return await refuse(c, db, envelope, signal, "UNPROCESSABLE_ENTITY", error.message, [{
      field: "ticker",
      message: error.message,
    }]);
  }

  // Committed with whatever other alerts arrive meanwhile (group commit); answered only after.
  const result = await budget(deps.signals!.accept({
    envelope,
    signal,
    dedupKey: signed ? `webhook-id:${signed.id}` : await dedupKey(signal),
    windowMs: signed
      ? Math.max(SIGNED_DEDUP_WINDOW_MS, config.webhook.dedupWindowMs)
      : config.webhook.dedupWindowMs,
    symbol,
  }));
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
  deps.ingest.tell({ type: "dispatch", signalId: result.signalId, accountId: account!.id }).catch((
    error,
  ) =>
    deps.log.warning("Cannot dispatch signal now; the sweep will", {
      signal_id: result.signalId,
      error: serializeError(error),
    })
  );
  return c.json({ signal_id: result.signalId }, 202);
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
