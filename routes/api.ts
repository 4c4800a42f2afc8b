/**
 * The read API and the kill switch, for an authenticated trader (broker accounts are managed in
 * `accounts.ts`). Every query is scoped by the caller's user id: another user's signal, order or
 * account is 404, never 403.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import {
  getGlobalKillSwitch,
  listAccounts,
  setAccountKillSwitch,
  setGlobalKillSwitch,
} from "../db/accounts.ts";
import {
  decodeCursor,
  DEFAULT_PAGE_SIZE,
  getOrder,
  getSignal,
  listOrders,
  listPositions,
  listSignals,
  listTrades,
  MAX_PAGE_SIZE,
} from "../db/reads.ts";
import type { Db } from "../db/client.ts";
import { ApiError } from "../lib/errors.ts";
import { auditActor } from "./_audit.ts";
import { type AuthEnv, authUser } from "./_auth.ts";
import {
  Alias,
  ERRORS,
  ErrorSchema,
  IdParam,
  json,
  NOT_FOUND,
  SECURED,
  validationHook,
} from "./_openapi.ts";

// ---- parameters -------------------------------------------------------------------------

const SymbolParam = z.string().min(1).max(64);
const Limit = z.string().regex(/^\d+$/, "Must be a whole number").refine(
  (v) => Number(v) >= 1 && Number(v) <= MAX_PAGE_SIZE,
  `Must be between 1 and ${MAX_PAGE_SIZE}`,
).optional().openapi({ description: `Page size, default ${DEFAULT_PAGE_SIZE}`, example: "50" });
const CursorParam = z.string().refine((v) => decodeCursor(v) !== null, "Must be a cursor")
  .optional().openapi({ description: "`next_cursor` of the previous page" });
const Timestamp = z.iso.datetime({ offset: true });

const SIGNAL_STATUSES = [
  "accepted",
  "executing",
  "placed",
  "filled",
  "rejected",
  "failed",
  "canceled",
] as const;
const ORDER_STATUSES = [
  "new",
  "pending",
  "partially_filled",
  "filled",
  "canceled",
  "expired",
  "rejected",
] as const;

const SignalQuery = z.object({
  status: z.enum(SIGNAL_STATUSES).optional(),
  symbol: SymbolParam.optional(),
  account: Alias.optional(),
  since: Timestamp.optional().openapi({ description: "Received at or after (ISO 8601)" }),
  until: Timestamp.optional().openapi({ description: "Received before (ISO 8601)" }),
  limit: Limit,
  cursor: CursorParam,
});

const OrderQuery = z.object({
  status: z.enum(ORDER_STATUSES).optional(),
  symbol: SymbolParam.optional(),
  account: Alias.optional(),
  limit: Limit,
  cursor: CursorParam,
});

const TradeQuery = z.object({
  status: z.enum(["open", "closed"]).optional(),
  symbol: SymbolParam.optional(),
  account: Alias.optional(),
  limit: Limit,
  cursor: CursorParam,
});

// ---- bodies -----------------------------------------------------------------------------

const str = z.string();
const nstr = z.string().nullable();
const Decimal = z.string().openapi({ description: "A decimal number, as a string" });
const NDecimal = Decimal.nullable();

const Signal = z.object({
  id: str,
  status: str,
  reason: nstr,
  source: str,
  account: nstr,
  account_id: nstr,
  ticker: nstr,
  symbol: nstr,
  action: nstr,
  side: nstr,
  quantity: NDecimal,
  order_type: nstr,
  time_in_force: nstr,
  price: NDecimal,
  limit_price: NDecimal,
  stop_price: NDecimal,
  take_profit: NDecimal,
  stop_loss: NDecimal,
  sender_id: nstr,
  parent_signal_id: nstr.openapi({
    description:
      "Set on the entry half of a flip the broker cannot do in one order: the signal whose close it followed",
  }),
  entry_signal_id: nstr.openapi({
    description:
      "Set on a flip the broker cannot do in one order: the entry signal that opens the new side after this one's close",
  }),
  strategy: z.unknown(),
  comment: nstr,
  signal_time: nstr,
  received_at: str,
  accepted_at: nstr,
  dispatched_at: nstr,
  ordered_at: nstr,
  filled_at: nstr,
  finished_at: nstr,
}).openapi("Signal");

const Journal = z.object({
  id: z.number(),
  event: str,
  account_id: nstr,
  order_id: nstr,
  data: z.unknown(),
  at: str,
}).openapi("JournalEntry");

const Order = z.object({
  id: str,
  account: str,
  account_id: str,
  signal_id: nstr,
  parent_id: nstr,
  leg: str,
  client_order_id: str,
  broker_order_id: nstr,
  symbol: str,
  side: str,
  quantity: Decimal,
  order_type: str,
  time_in_force: str,
  limit_price: NDecimal,
  stop_price: NDecimal,
  status: str,
  broker_status: nstr,
  filled_quantity: Decimal,
  average_fill_price: NDecimal,
  reason: nstr,
  status_history: z.unknown(),
  created_at: str,
  updated_at: str,
}).openapi("Order");

const Fill = z.object({
  id: str,
  order_id: str,
  broker_fill_id: str,
  symbol: str,
  side: str,
  quantity: Decimal,
  price: Decimal,
  fee: Decimal,
  filled_at: str,
}).openapi("Fill");

const SignalDetail = Signal.extend({
  raw_body: str,
  journal: z.array(Journal),
  orders: z.array(Order),
}).openapi("SignalDetail");

const OrderDetail = Order.extend({ fills: z.array(Fill) }).openapi("OrderDetail");

const Position = z.object({
  account: str,
  account_id: str,
  symbol: str,
  quantity: Decimal,
  average_price: Decimal,
  realized_pnl: Decimal,
  last_price: NDecimal,
  opened_at: nstr,
  updated_at: str,
}).openapi("Position");

const Trade = z.object({
  id: str,
  account: str,
  account_id: str,
  symbol: str,
  direction: str,
  quantity: Decimal,
  entry_price: Decimal,
  exit_price: NDecimal,
  stop_loss: NDecimal,
  realized_pnl: Decimal,
  fees: Decimal,
  status: str,
  entry_signal_id: nstr,
  exit_signal_id: nstr,
  opened_at: str,
  closed_at: nstr,
}).openapi("Trade");

const KillSwitches = z.object({
  global: z.boolean(),
  accounts: z.record(z.string(), z.boolean()),
}).openapi("KillSwitches");

const KillSwitchBody = z.object({
  enabled: z.boolean(),
  account: Alias.optional().openapi({ description: "Omit for the global switch (admin only)" }),
}).openapi("KillSwitchRequest");

function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({ data: z.array(item), next_cursor: z.string().nullable() }).openapi(name);
}

// ---- routes -----------------------------------------------------------------------------

/** The read API and kill switch; mount with `app.route("/", api)`. */
export const api = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

api.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/signals",
    tags: ["signals"],
    summary: "List signals, newest first",
    ...SECURED,
    request: { query: SignalQuery },
    responses: { 200: json(pageOf(Signal, "SignalPage"), "A page of signals"), ...ERRORS },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const { userId } = authUser(c);
    const page = await listSignals(db(c), userId, {
      status: q.status,
      symbol: q.symbol,
      account: q.account,
      since: q.since === undefined ? undefined : new Date(q.since),
      until: q.until === undefined ? undefined : new Date(q.until),
      ...pageFilter(q),
    });
    return c.json({ data: page.data, next_cursor: page.nextCursor }, 200);
  },
);

api.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/signals/{id}",
    tags: ["signals"],
    summary: "One signal with its journal and orders",
    ...SECURED,
    request: { params: IdParam },
    responses: { 200: json(SignalDetail, "The signal"), ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const signal = await getSignal(db(c), authUser(c).userId, id);
    if (!signal) throw new ApiError("NOT_FOUND", `Cannot find signal "${id}"`);
    return c.json(signal, 200);
  },
);

api.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/orders",
    tags: ["orders"],
    summary: "List orders, newest first",
    ...SECURED,
    request: { query: OrderQuery },
    responses: { 200: json(pageOf(Order, "OrderPage"), "A page of orders"), ...ERRORS },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const page = await listOrders(db(c), authUser(c).userId, {
      status: q.status,
      symbol: q.symbol,
      account: q.account,
      ...pageFilter(q),
    });
    return c.json({ data: page.data, next_cursor: page.nextCursor }, 200);
  },
);

api.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/orders/{id}",
    tags: ["orders"],
    summary: "One order with its fills",
    ...SECURED,
    request: { params: IdParam },
    responses: { 200: json(OrderDetail, "The order"), ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const order = await getOrder(db(c), authUser(c).userId, id);
    if (!order) throw new ApiError("NOT_FOUND", `Cannot find order "${id}"`);
    return c.json(order, 200);
  },
);

api.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/positions",
    tags: ["positions"],
    summary: "Open (non-zero) positions across the caller's accounts",
    ...SECURED,
    responses: {
      200: json(z.object({ data: z.array(Position) }).openapi("Positions"), "Positions"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const data = await listPositions(db(c), authUser(c).userId);
    return c.json({ data }, 200);
  },
);

api.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/trades",
    tags: ["trades"],
    summary: "List trades (round trips), most recently opened first",
    ...SECURED,
    request: { query: TradeQuery },
    responses: { 200: json(pageOf(Trade, "TradePage"), "A page of trades"), ...ERRORS },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const page = await listTrades(db(c), authUser(c).userId, {
      status: q.status,
      symbol: q.symbol,
      account: q.account,
      ...pageFilter(q),
    });
    return c.json({ data: page.data, next_cursor: page.nextCursor }, 200);
  },
);

api.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/kill-switch",
    tags: ["kill switch"],
    summary: "The global kill switch and the caller's account switches",
    ...SECURED,
    responses: { 200: json(KillSwitches, "The switches"), ...ERRORS },
  }),
  async (c) => c.json(await killSwitches(db(c), authUser(c).userId), 200),
);

api.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/kill-switch",
    tags: ["kill switch"],
    summary: "Turn an account's kill switch (owner) or the global one (admin) on or off",
    ...SECURED,
    request: {
      body: { required: true, content: { "application/json": { schema: KillSwitchBody } } },
    },
    responses: {
      200: json(KillSwitches, "The switches after the change"),
      ...ERRORS,
      403: json(ErrorSchema, "Only an admin may change the global switch"),
      ...NOT_FOUND,
    },
  }),
  async (c) => {
    const { enabled, account } = c.req.valid("json");
    const { userId, role } = authUser(c);
    const database = db(c);
    if (account !== undefined) {
      const changed = await setAccountKillSwitch(
        database,
        userId,
        account,
        enabled,
        auditActor(c),
      );
      if (!changed) throw new ApiError("NOT_FOUND", `Cannot find account "${account}"`);
    } else {
      if (role !== "admin") {
        throw new ApiError(
          "FORBIDDEN",
          "Cannot change the global kill switch: it takes an admin; give an account to switch one",
        );
      }
      await setGlobalKillSwitch(database, enabled, userId, auditActor(c));
    }
    c.get("deps").log.warning("Kill switch changed", {
      request_id: c.get("requestId"),
      user_id: userId,
      scope: account === undefined ? "global" : "account",
      account: account ?? null,
      enabled,
    });
    return c.json(await killSwitches(database, userId), 200);
  },
);

// ---- helpers ----------------------------------------------------------------------------

function db(c: { get(key: "deps"): { db: Db } }): Db {
  return c.get("deps").db;
}

function pageFilter(q: { limit?: string; cursor?: string }) {
  return {
    limit: q.limit === undefined ? DEFAULT_PAGE_SIZE : Number(q.limit),
    cursor: q.cursor === undefined ? undefined : decodeCursor(q.cursor) ?? undefined,
  };
}

async function killSwitches(
  database: Db,
  userId: string,
): Promise<{ global: boolean; accounts: Record<string, boolean> }> {
  const [global, accounts] = await Promise.all([
    getGlobalKillSwitch(database),
    listAccounts(database, userId),
  ]);
  return { global, accounts: Object.fromEntries(accounts.map((a) => [a.alias, a.killSwitch])) };
}
