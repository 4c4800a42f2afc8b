/**
 * `POST /api/v1/webhooks/bars` — bar-close alerts from TradingView: one OHLCV bar per request,
 * stored per user, symbol and timeframe. Same locks as the signal webhook (key in the body,
 * signatures, allowlist, limits); a bar sent twice leaves one row.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { recordLastPrice, type Timeframe, upsertBars } from "../db/bars.ts";
import { SCAN_TIMEFRAMES, type ScanTimeframe } from "../lib/schedule.ts";
import { parseTimeframe, unfilledPlaceholders, validateBar } from "../lib/bar_input.ts";
import { ApiError } from "../lib/errors.ts";
import { mapSymbol, SymbolError } from "../lib/symbols.ts";
import type { AppEnv } from "./_env.ts";
import { ErrorSchema, validationHook } from "./_openapi.ts";
import { authenticateWebhook, WEBHOOK_ERRORS } from "./_webhook_auth.ts";

const TIMEFRAME_MS: Readonly<Record<Timeframe, number>> = {
  "1m": 60_000,
  "5m": 5 * 60_000,
  "15m": 15 * 60_000,
  "30m": 30 * 60_000,
  "1h": 3_600_000,
  "2h": 2 * 3_600_000,
  "4h": 4 * 3_600_000,
  "1d": 86_400_000,
  "1w": 7 * 86_400_000,
};

const Price = z.union([z.number(), z.string()]);
const BarAlert = z.object({
  key: z.string().openapi({ description: "Your webhook key (whk_…)" }),
  ticker: z.string().openapi({ example: "NASDAQ:AAPL", description: '"{{ticker}}"' }),
  timeframe: z.string().optional().openapi({
    description: 'Ours (1m 5m 15m 30m 1h 2h 4h 1d 1w) or TradingView\'s "{{interval}}"',
  }),
  interval: z.string().optional().openapi({
    description: '"{{interval}}": 1 5 15 30 60 120 240 D 1D W',
  }),
  open: Price.openapi({ description: '"{{open}}"' }),
  high: Price.openapi({ description: '"{{high}}"' }),
  low: Price.openapi({ description: '"{{low}}"' }),
  close: Price.openapi({ description: '"{{close}}"' }),
  volume: Price.optional().openapi({ description: '"{{volume}}"' }),
  time: Price.openapi({
    description: '"{{time}}": the bar\'s open time, ISO 8601 (2026-01-05T14:00:00Z) or epoch ms',
  }),
}).openapi("BarAlert");
const Stored = z.object({
  stored: z.literal(true),
  symbol: z.string(),
  timeframe: z.string(),
  ts: z.string(),
}).openapi("BarStored");

/** The bar webhook sub-app. */
export const barWebhooks = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

barWebhooks.openAPIRegistry.registerPath(
  createRoute({
    method: "post",
    path: "/api/v1/webhooks/bars",
    tags: ["webhooks"],
    summary: "Receive a bar-close alert",
    description:
      "One OHLCV bar, as application/json or text/plain, authenticated like the TradingView alert " +
      "webhook (key in the body, optional Standard Webhooks signature). Idempotent: the same bar " +
      "again updates the one row.",
    request: {
      body: {
        content: {
          "application/json": { schema: BarAlert },
          "text/plain": { schema: z.string() },
        },
        required: true,
      },
    },
    responses: {
      200: {
        description: "Stored",
        content: { "application/json": { schema: Stored } },
      },
      400: {
        description: "Invalid bar: a field, an unfilled placeholder, inconsistent prices",
        content: { "application/json": { schema: ErrorSchema } },
      },
      ...WEBHOOK_ERRORS,
      503: {
        description: "Database unavailable: nothing was stored; retry",
        content: { "application/json": { schema: ErrorSchema } },
      },
    },
  }),
);
barWebhooks.post("/api/v1/webhooks/bars", receiveBar);

async function receiveBar(c: Context<AppEnv>): Promise<Response> {
  const { receivedAt, payload, db, found } = await authenticateWebhook(c, {
    what: "bar",
    alias: () => "paper",
  });
  const invalid = (details: { field: string; message: string }[]) =>
    new ApiError("VALIDATION_ERROR", "Cannot accept the bar: invalid fields", { details });

  const placeholders = unfilledPlaceholders(payload);
  if (placeholders.length > 0) throw invalid(placeholders);

  const problems: { field: string; message: string }[] = [];
  const timeframeField = payload.timeframe !== undefined ? "timeframe" : "interval";
  const rawTimeframe = payload[timeframeField];
  const timeframe = parseTimeframe(rawTimeframe);
  if (timeframe === null) {
    problems.push({
      field: timeframeField,
      message: rawTimeframe === undefined
        ? '"timeframe" (or "interval") is required'
        : `"${timeframeField}" must be one of 1 5 15 30 60 120 240 D 1D W or 1m 5m 15m 30m 1h 2h 4h 1d 1w`,
    });
  }
  let symbol: string | null = null;
  if (typeof payload.ticker !== "string" || payload.ticker.trim() === "") {
    problems.push({ field: "ticker", message: '"ticker" is required' });
  } else {
    try {
      symbol = mapSymbol(payload.ticker.trim(), { broker: "paper", now: receivedAt }).symbol;
    } catch (error) {
      if (!(error instanceof SymbolError)) throw error;
      problems.push({ field: "ticker", message: error.message });
    }
  }
  const validation = validateBar(payload, "ms");
  if (!validation.ok) problems.push(...validation.problems);
  if (problems.length > 0 || !validation.ok) throw invalid(problems);

  const bar = validation.bar;
  const userId = found.key.userId;
  await upsertBars(db, { userId, symbol: symbol!, timeframe: timeframe!, source: "webhook" }, [
    bar,
  ]);
  // The close is the price at the bar's end, or now for a bar still open.
  const closedAt = Math.min(bar.ts.getTime() + TIMEFRAME_MS[timeframe!], receivedAt.getTime());
  await recordLastPrice(db, symbol!, bar.close, new Date(closedAt));
  // A new bar on a scanned timeframe: the scanner checks the user's lines against it now.
  const scanned = (SCAN_TIMEFRAMES as readonly string[]).includes(timeframe!);
  if (scanned) {
    const scanTimeframe = timeframe as ScanTimeframe;
    c.get("deps").scanner?.tell({ type: "bar", userId, symbol: symbol!, timeframe: scanTimeframe })
      .catch((error) =>
        c.get("deps").log.warning("Cannot tell the scanner about a bar", {
          error: (error as Error).message,
        })
      );
  }
  return c.json(
    { stored: true, symbol: symbol!, timeframe: timeframe!, ts: bar.ts.toISOString() },
    200,
  );
}
