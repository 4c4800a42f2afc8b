/**
 * The trader's scanner: watchlist (symbol and timeframe, 1H and up), scan settings, and the
 * trendlines found. Every query is scoped by the caller's user id.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import {
  addWatch,
  listTrendlines,
  listWatches,
  readScanSettings,
  removeWatch,
  writeScanSettings,
} from "../db/trendlines.ts";
import { ApiError } from "../lib/errors.ts";
import { SCAN_TIMEFRAMES } from "../lib/schedule.ts";
import { DEFAULT_SCAN_SETTINGS } from "../lib/trendlines.ts";
import { type AuthEnv, authUser } from "./_auth.ts";
import { ERRORS, json, jsonBody, NOT_FOUND, SECURED, validationHook } from "./_openapi.ts";

// ---- schemas ----------------------------------------------------------------------------

const SymbolField = z.string().trim().regex(
  /^[A-Za-z0-9][A-Za-z0-9.:!/_-]{0,63}$/,
  "Must be a symbol of 1 to 64 letters, digits or . : ! / _ -",
).openapi({ example: "AAPL" });
const Timeframe = z.enum(SCAN_TIMEFRAMES).openapi({ description: "1H and up" });

const WatchBody = z.strictObject({ symbol: SymbolField, timeframe: Timeframe })
  .openapi("WatchlistEntryRequest");

const WatchEntry = z.object({ symbol: z.string(), timeframe: Timeframe, created_at: z.string() })
  .openapi("WatchlistEntry");

const Settings = z.strictObject({
  pivot_window: z.number().int().min(1).max(50).optional()
    .openapi({ description: "Bars each side of a pivot (default 5)" }),
  tolerance_mode: z.enum(["percent", "atr"]).optional()
    .openapi({ description: "Touch tolerance as a percent of price or an ATR(14) multiple" }),
  tolerance: z.number().positive().max(10).optional()
    .openapi({ description: "0.1 = 0.1% of price (percent), or the ATR multiple (atr)" }),
  min_touches: z.number().int().min(2).max(20).optional().openapi({ description: "Default 3" }),
  max_lines: z.number().int().min(1).max(50).optional()
    .openapi({ description: "Most lines kept per symbol and timeframe (default 5)" }),
}).openapi("ScanSettings");

const TrendlineQuery = z.object({
  symbol: SymbolField.optional(),
  timeframe: Timeframe.optional(),
  status: z.enum(["active", "broken", "retired"]).optional(),
});

const TrendlineOut = z.object({
  id: z.string(),
  symbol: z.string(),
  timeframe: Timeframe,
  kind: z.enum(["support", "resistance"]),
  t1: z.string(),
  p1: z.number(),
  t2: z.string(),
  p2: z.number(),
  slope_per_hour: z.number(),
  touches: z.number(),
  score: z.number(),
  status: z.enum(["active", "broken", "retired"]),
  first_seen: z.string(),
  last_evaluated: z.string(),
  broken_at: z.string().nullable(),
}).openapi("Trendline");

// ---- routes -----------------------------------------------------------------------------

/** The watchlist, scan settings and trendline routes; mount with `app.route("/", watchlists)`. */
export const watchlists = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

watchlists.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/watchlists",
    tags: ["scanner"],
    summary: "The caller's watched symbols and timeframes",
    ...SECURED,
    responses: {
      200: json(z.object({ data: z.array(WatchEntry) }).openapi("Watchlist"), "The watchlist"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const rows = await listWatches(c.get("deps").db, authUser(c).userId);
    return c.json({
      data: rows.map((r) => ({
        symbol: r.symbol,
        timeframe: r.timeframe,
        created_at: r.createdAt.toISOString(),
      })),
    }, 200);
  },
);

watchlists.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/watchlists",
    tags: ["scanner"],
    summary: "Watch a symbol on a timeframe (scanned on that timeframe's schedule)",
    ...SECURED,
    request: jsonBody(WatchBody),
    responses: {
      201: json(z.object({ symbol: z.string(), timeframe: Timeframe }), "Watched"),
      200: json(z.object({ symbol: z.string(), timeframe: Timeframe }), "Already watched"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const { symbol, timeframe } = c.req.valid("json");
    const added = await addWatch(c.get("deps").db, {
      userId: authUser(c).userId,
      symbol,
      timeframe,
    });
    return c.json({ symbol, timeframe }, added ? 201 : 200);
  },
);

watchlists.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/watchlists",
    tags: ["scanner"],
    summary: "Stop watching a symbol on a timeframe",
    ...SECURED,
    request: { query: WatchBody },
    responses: { 204: { description: "No longer watched" }, ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { symbol, timeframe } = c.req.valid("query");
    const removed = await removeWatch(c.get("deps").db, {
      userId: authUser(c).userId,
      symbol,
      timeframe,
    });
    if (!removed) {
      throw new ApiError("NOT_FOUND", `Cannot find watched "${symbol}" on "${timeframe}"`);
    }
    return c.body(null, 204);
  },
);

watchlists.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/scan-settings",
    tags: ["scanner"],
    summary: "The caller's scan settings, defaults filled in",
    ...SECURED,
    responses: { 200: json(Settings, "The settings"), ...ERRORS },
  }),
  async (c) => {
    const saved = await readScanSettings(c.get("deps").db, authUser(c).userId);
    return c.json(presentSettings({ ...DEFAULT_SCAN_SETTINGS, ...saved }), 200);
  },
);

watchlists.openapi(
  createRoute({
    method: "put",
    path: "/api/v1/scan-settings",
    tags: ["scanner"],
    summary: "Replace the caller's scan settings (omitted fields take the defaults)",
    ...SECURED,
    request: jsonBody(Settings),
    responses: { 200: json(Settings, "The settings now"), ...ERRORS },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const settings = Object.fromEntries(
      Object.entries({
        pivotWindow: body.pivot_window,
        toleranceMode: body.tolerance_mode,
        tolerance: body.tolerance,
        minTouches: body.min_touches,
        maxLines: body.max_lines,
      }).filter(([, v]) => v !== undefined),
    );
    await writeScanSettings(c.get("deps").db, authUser(c).userId, settings);
    return c.json(presentSettings({ ...DEFAULT_SCAN_SETTINGS, ...settings }), 200);
  },
);

watchlists.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/trendlines",
    tags: ["scanner"],
    summary: "The caller's trendlines, newest first",
    ...SECURED,
    request: { query: TrendlineQuery },
    responses: {
      200: json(z.object({ data: z.array(TrendlineOut) }).openapi("Trendlines"), "The lines"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const filter = c.req.valid("query");
    const rows = await listTrendlines(c.get("deps").db, authUser(c).userId, filter);
    return c.json({
      data: rows.map((l) => ({
        id: l.id,
        symbol: l.symbol,
        timeframe: l.timeframe,
        kind: l.kind,
        t1: l.t1.toISOString(),
        p1: l.p1,
        t2: l.t2.toISOString(),
        p2: l.p2,
        slope_per_hour: l.slopePerHour,
        touches: l.touches,
        score: l.score,
        status: l.status,
        first_seen: l.firstSeen.toISOString(),
        last_evaluated: l.lastEvaluated.toISOString(),
        broken_at: l.brokenAt?.toISOString() ?? null,
      })),
    }, 200);
  },
);

function presentSettings(s: typeof DEFAULT_SCAN_SETTINGS) {
  return {
    pivot_window: s.pivotWindow,
    tolerance_mode: s.toleranceMode,
    tolerance: s.tolerance,
    min_touches: s.minTouches,
    max_lines: s.maxLines,
  };
}
