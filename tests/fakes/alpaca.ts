/**
 * A fake Alpaca Trading API v2 on loopback, speaking the real wire format (paths, snake_case
 * JSON, numbers as strings, `{code, message}` errors), so tests run the real
 * `@alpacahq/alpaca-trade-api` SDK against it. Faults are injected per request: an error status,
 * a request that never answers, a delay, or a connection dropped after the order was recorded.
 *
 * Like Alpaca, it holds shares for open orders: an order that reduces a position may ask for
 * at most what is left once the open orders on that side are served (a bracket's two exit legs
 * hold the same shares once), else it answers 403 {code: 40310000, message: "insufficient qty
 * available for order (requested: N, available: M)"}; that covers a single order that would flip
 * a position too, which Alpaca refuses. Canceling an order that is no longer open is a 422.
 *
 * Requests reach `Deno.serve` through a small TCP front on the public port, because only a raw
 * socket can be closed without answering (the ambiguous "did my order go through?" case).
 *
 * @example
 * await using alpaca = startFakeAlpaca();
 * alpaca.setPrice("AAPL", "190.25");
 * alpaca.faults.add({ method: "POST", path: "/v2/orders", kind: "status", status: 500 });
 */

/** An order as Alpaca serializes it (the fields we read or assert on, plus the usual rest). */
export interface AlpacaOrderJson {
  id: string;
  client_order_id: string;
  created_at: string;
  updated_at: string;
  submitted_at: string;
  filled_at: string | null;
  expired_at: string | null;
  canceled_at: string | null;
  failed_at: string | null;
  replaced_at: string | null;
  replaced_by: string | null;
  replaces: string | null;
  asset_id: string;
  symbol: string;
  asset_class: string;
  notional: string | null;
  qty: string;
  filled_qty: string;
  filled_avg_price: string | null;
  order_class: string;
  order_type: string;
  type: string;
  side: string;
  position_intent: string;
  time_in_force: string;
  limit_price: string | null;
  stop_price: string | null;
  status: string;
  extended_hours: boolean;
  legs: AlpacaOrderJson[] | null;
  trail_percent: string | null;
  trail_price: string | null;
  hwm: string | null;
}

/** Which requests a fault applies to, and how many times (default once). */
export interface FaultMatch {
  /** HTTP method, e.g. "POST"; any when absent. */
  method?: string;
  /** Exact path without the query, e.g. "/v2/orders"; any when absent. */
  path?: string;
  times?: number;
}

/** One injected failure. */
export type Fault =
  & FaultMatch
  & (
    | { kind: "status"; status: number; body?: unknown; headers?: Record<string, string> }
    /** Never answers; the request hangs until the client gives up or the fake closes. */
    | { kind: "timeout" }
    /** Handles the request (an order is recorded), then closes the connection unanswered. */
    | { kind: "drop_after_record" }
    /** Waits, then handles the request normally. */
    | { kind: "delay"; ms: number }
  );

/** The fault queue: the first fault matching a request is applied and used up. */
export interface Faults {
  add(fault: Fault): void;
  clear(): void;
  /** Faults not used up yet. */
  readonly pending: number;
}

/** A request as the fake saw it, faulted or not. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  /** The `APCA-API-KEY-ID` header it carried, if any. */
  keyId: string | null;
}

/** Options of {@linkcode startFakeAlpaca}. */
export interface FakeAlpacaOptions {
  /** Accepted `APCA-API-KEY-ID` (default "test-key-id"); `addKey` accepts more. */
  keyId?: string;
  /** Accepted `APCA-API-SECRET-KEY` (default "test-secret-key"). */
  secretKey?: string;
  /** Market orders fill at once at the symbol's price (default true); else stay "accepted". */
  fillMarketOrders?: boolean;
  /** Starting prices by symbol, decimal strings. */
  prices?: Record<string, string>;
  /** Starting cash (default "100000"). */
  cash?: string;
  /** What `/v2/clock` says (default: open). */
  marketOpen?: boolean;
  /** Milliseconds since the epoch, for the timestamps the fake writes. */
  now?: () => number;
}

/** A running fake. */
export interface FakeAlpaca extends AsyncDisposable {
  /** Base URL to give the SDK as `basePath`. */
  url: string;
  /** Parent orders by `client_order_id`; inspect or edit them directly. */
  orders: Map<string, AlpacaOrderJson>;
  faults: Faults;
  /** Every request, in arrival order. */
  requests: RecordedRequest[];
  setPrice(symbol: string, price: string): void;
  /** Accepts one more key pair from now on (a trader's rotated keys). */
  addKey(keyId: string, secretKey: string): void;
  /**
   * Fills an order (by id or client order id, legs included): `qty` defaults to what is left,
   * `price` to the limit price, else the symbol's price, else the stop price.
   */
  fillOrder(id: string, qty?: string, price?: string): AlpacaOrderJson;
  close(): Promise<void>;
}

/** A client connection and its twin to the server; `ended` aborts when both are closed. */
interface Link {
  client: Deno.Conn;
  upstream: Deno.Conn;
  ended: AbortController;
}

const OPEN_STATUSES = new Set([
  "new",
  "accepted",
  "pending_new",
  "accepted_for_bidding",
  "partially_filled",
  "held",
  "calculated",
  "pending_replace",
  "done_for_day",
]);
/** Alpaca's 403 code for an order the account may not place (here: shares held or missing). */
const FORBIDDEN_ORDER_CODE = 40310000;
const ORDER_TYPES = new Set(["market", "limit", "stop", "stop_limit"]);
const TIME_IN_FORCE = new Set(["day", "gtc", "opg", "cls", "ioc", "fok"]);

/** Starts a fake Alpaca on 127.0.0.1 with a random port. */
export function startFakeAlpaca(options: FakeAlpacaOptions = {}): FakeAlpaca {
  const keys = new Map([[options.keyId ?? "test-key-id", options.secretKey ?? "test-secret-key"]]);
  const now = options.now ?? Date.now;
  const prices = new Map(Object.entries(options.prices ?? {}));
  const orders = new Map<string, AlpacaOrderJson>();
  const byId = new Map<string, AlpacaOrderJson>();
  const positions = new Map<string, { qty: number; avg: number }>();
  let cash = Number(options.cash ?? "100000");
  const requests: RecordedRequest[] = [];
  const queue: Fault[] = [];
  const closing = new AbortController();

  // The TCP front: one upstream connection per client connection, keyed by the upstream's local
  // port, which the server sees as the request's remote port.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const links = new Map<number, Link>();
  const pumps = new Set<Promise<void>>();
  const accepting = acceptLoop();

  async function acceptLoop() {
    try {
      for await (const client of listener) {
        const pump = link(client);
        pumps.add(pump);
        pump.finally(() => pumps.delete(pump));
      }
    } catch {
      // the listener was closed
    }
  }

  async function link(client: Deno.Conn) {
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    } catch {
      closeQuietly(client);
      return;
    }
    const port = (upstream.localAddr as Deno.NetAddr).port;
    const ended = new AbortController();
    links.set(port, { client, upstream, ended });
    await Promise.all([pipe(client, upstream), pipe(upstream, client)]);
    links.delete(port);
    ended.abort();
  }

  async function pipe(from: Deno.Conn, to: Deno.Conn) {
    try {
      await from.readable.pipeTo(to.writable);
    } catch {
      // a drop or a peer closing ends the pipe
    } finally {
      closeQuietly(from);
      closeQuietly(to);
    }
  }

  function drop(remotePort: number) {
    const pair = links.get(remotePort);
    if (!pair) return;
    closeQuietly(pair.client);
    closeQuietly(pair.upstream);
  }

  async function handle(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(request.url);
    requests.push({
      method: request.method,
      path: url.pathname,
      query: url.search,
      keyId: request.headers.get("APCA-API-KEY-ID"),
    });
    const fault = takeFault(request.method, url.pathname);
    switch (fault?.kind) {
      case "status":
        return json(fault.body ?? { code: 50010000, message: "internal server error" }, {
          status: fault.status,
          headers: fault.headers,
        });
      case "timeout":
        await aborted(gone(info));
        return new Response(null, { status: 504 });
      case "delay":
        if (!await sleep(fault.ms, gone(info))) return new Response(null, { status: 503 });
        break;
      case "drop_after_record": {
        const response = await route(request, url);
        await response.body?.cancel();
        drop((info.remoteAddr as Deno.NetAddr).port);
        await aborted(gone(info));
        return new Response(null, { status: 502 });
      }
    }
    return route(request, url);
  }

  /** Aborts when the request's connection ends or the fake closes. */
  function gone(info: Deno.ServeHandlerInfo): AbortSignal {
    const link = links.get((info.remoteAddr as Deno.NetAddr).port);
    return link ? AbortSignal.any([link.ended.signal, closing.signal]) : closing.signal;
  }

  function takeFault(method: string, path: string): Fault | undefined {
    const index = queue.findIndex((f) =>
      (f.method === undefined || f.method.toUpperCase() === method) &&
      (f.path === undefined || f.path === path)
    );
    if (index < 0) return undefined;
    const fault = queue[index]!;
    const left = (fault.times ?? 1) - 1;
    if (left <= 0) queue.splice(index, 1);
    else queue[index] = { ...fault, times: left };
    return fault;
  }

  async function route(request: Request, url: URL): Promise<Response> {
    const key = request.headers.get("APCA-API-KEY-ID");
    const secret = request.headers.get("APCA-API-SECRET-KEY");
    if (!key || !secret) return json({ message: "forbidden." }, { status: 403 });
    if (keys.get(key) !== secret) {
      return json({ code: 40110000, message: "request is not authorized" }, { status: 401 });
    }
    const path = url.pathname;
    const method = request.method;
    if (path === "/v2/orders" && method === "POST") return createOrder(await request.json());
    if (path === "/v2/orders" && method === "GET") return listOrders(url.searchParams);
    if (path === "/v2/orders:by_client_order_id" && method === "GET") {
      const order = orders.get(url.searchParams.get("client_order_id") ?? "");
      return order ? json(order) : orderNotFound();
    }
    const match = path.match(/^\/v2\/orders\/([^/]+)$/);
    if (match) {
      const order = byId.get(decodeURIComponent(match[1]!));
      if (!order) return orderNotFound();
      if (method === "GET") return json(order);
      if (method === "DELETE") return cancel(order);
    }
    if (path === "/v2/account" && method === "GET") return json(account());
    if (path === "/v2/positions" && method === "GET") return json(positionList());
    if (path === "/v2/clock" && method === "GET") return json(clock());
    return json({ code: 40410000, message: "endpoint not found" }, { status: 404 });
  }

  /**
   * GET /v2/orders: `status` open (default), closed or all; `limit` (default 50, at most 500);
   * `direction` desc (default) or asc by submission; `nested=true` rolls a bracket's legs up
   * under their entry, else every leg is an order of its own (with `legs: null`).
   */
  function listOrders(query: URLSearchParams): Response {
    const status = query.get("status") ?? "open";
    const limit = Number(query.get("limit") ?? "50");
    const direction = query.get("direction") ?? "desc";
    if (!["open", "closed", "all"].includes(status)) {
      return json({ code: 42210000, message: "invalid status" }, { status: 422 });
    }
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      return json({ code: 42210000, message: "invalid limit" }, { status: 422 });
    }
    if (direction !== "asc" && direction !== "desc") {
      return json({ code: 42210000, message: "invalid direction" }, { status: 422 });
    }
    const wanted = (o: AlpacaOrderJson) =>
      status === "all" || OPEN_STATUSES.has(o.status) === (status === "open");
    const listed = query.get("nested") === "true"
      ? [...orders.values()].filter(wanted)
      : [...orders.values()].flatMap((o) => [{ ...o, legs: null }, ...(o.legs ?? [])])
        .filter(wanted);
    listed.sort((a, b) => a.submitted_at.localeCompare(b.submitted_at));
    if (direction === "desc") listed.reverse();
    return json(listed.slice(0, limit));
  }

  function createOrder(body: Record<string, unknown>): Response {
    const invalid = validate(body);
    if (invalid) return json({ code: 40010001, message: invalid }, { status: 422 });
    const clientOrderId = String(body.client_order_id ?? crypto.randomUUID());
    if (orders.has(clientOrderId)) {
      return json({ code: 40010001, message: "client_order_id must be unique" }, { status: 422 });
    }
    const short = shortfall(String(body.symbol), String(body.side), Number(body.qty));
    if (short) {
      return json({
        code: FORBIDDEN_ORDER_CODE,
        message: `insufficient qty available for order (requested: ${
          decimal(short.requested)
        }, available: ${decimal(short.available)})`,
      }, { status: 403 });
    }
    const type = String(body.type);
    const orderClass = String(body.order_class ?? "");
    const order = newOrder({
      client_order_id: clientOrderId,
      symbol: String(body.symbol),
      qty: String(body.qty),
      side: String(body.side),
      type,
      time_in_force: String(body.time_in_force),
      limit_price: optional(body.limit_price),
      stop_price: optional(body.stop_price),
      order_class: orderClass === "simple" ? "" : orderClass,
      status: type === "market" ? "accepted" : "new",
    });
    if (orderClass === "bracket") {
      const exit = order.side === "buy" ? "sell" : "buy";
      const takeProfit = body.take_profit as Record<string, unknown>;
      const stopLoss = body.stop_loss as Record<string, unknown>;
      order.legs = [
        newOrder({
          ...legBase(order, exit),
          type: "limit",
          limit_price: optional(takeProfit.limit_price),
          stop_price: null,
        }),
        newOrder({
          ...legBase(order, exit),
          type: stopLoss.limit_price === undefined ? "stop" : "stop_limit",
          limit_price: optional(stopLoss.limit_price),
          stop_price: optional(stopLoss.stop_price),
        }),
      ];
    }
    orders.set(clientOrderId, order);
    if (type === "market" && options.fillMarketOrders !== false && prices.has(order.symbol)) {
      fill(order, order.qty, prices.get(order.symbol)!);
    }
    return json(order);
  }

  /**
   * Alpaca's check of an order against the position it reduces: the shares not yet held by open
   * orders on the same side. A bracket's exit legs (one cancels the other) hold their shares
   * once; legs still `held` (entry not filled) hold nothing yet. Undefined when the order fits,
   * or adds to the position (or opens one: shorting is enabled).
   */
  function shortfall(
    symbol: string,
    side: string,
    requested: number,
  ): { requested: number; available: number } | undefined {
    const position = positions.get(symbol)?.qty ?? 0;
    const reduces = side === "sell" ? position > 0 : position < 0;
    if (!reduces) return undefined;
    let held = 0;
    for (const order of orders.values()) {
      const working = (o: AlpacaOrderJson) =>
        o.symbol === symbol && o.side === side && o.status !== "held" &&
        OPEN_STATUSES.has(o.status);
      const left = (o: AlpacaOrderJson) => Number(o.qty) - Number(o.filled_qty);
      if (working(order)) held += left(order);
      const legs = (order.legs ?? []).filter(working).map(left);
      if (legs.length > 0) held += Math.max(...legs);
    }
    const available = Math.max(0, Math.abs(position) - held);
    return requested > available ? { requested, available } : undefined;
  }

  function legBase(parent: AlpacaOrderJson, side: string) {
    return {
      client_order_id: crypto.randomUUID(),
      symbol: parent.symbol,
      qty: parent.qty,
      side,
      time_in_force: parent.time_in_force,
      order_class: "bracket",
      status: "held",
    };
  }

  function validate(body: Record<string, unknown>): string | undefined {
    if (typeof body.symbol !== "string" || body.symbol === "") return "symbol is required";
    if (!(Number(body.qty) > 0)) return "qty must be > 0";
    if (body.side !== "buy" && body.side !== "sell") return "invalid side";
    if (!ORDER_TYPES.has(String(body.type))) return "invalid order type";
    if (!TIME_IN_FORCE.has(String(body.time_in_force))) return "invalid time_in_force";
    const type = String(body.type);
    if ((type === "limit" || type === "stop_limit") && body.limit_price === undefined) {
      return "limit_price is required";
    }
    if ((type === "stop" || type === "stop_limit") && body.stop_price === undefined) {
      return "stop_price is required";
    }
    if (typeof body.client_order_id === "string" && body.client_order_id.length > 128) {
      return "client_order_id must be no more than 128 characters";
    }
    if (body.order_class === "bracket") {
      const takeProfit = body.take_profit as Record<string, unknown> | undefined;
      const stopLoss = body.stop_loss as Record<string, unknown> | undefined;
      if (takeProfit?.limit_price === undefined) return "take_profit.limit_price is required";
      if (stopLoss?.stop_price === undefined) return "stop_loss.stop_price is required";
      if (body.time_in_force !== "day" && body.time_in_force !== "gtc") {
        return "bracket orders must be day or gtc";
      }
    }
    return undefined;
  }

  function newOrder(
    fields: Pick<
      AlpacaOrderJson,
      | "client_order_id"
      | "symbol"
      | "qty"
      | "side"
      | "type"
      | "time_in_force"
      | "limit_price"
      | "stop_price"
      | "order_class"
      | "status"
    >,
  ): AlpacaOrderJson {
    const at = timestamp();
    const order: AlpacaOrderJson = {
      id: crypto.randomUUID(),
      created_at: at,
      updated_at: at,
      submitted_at: at,
      filled_at: null,
      expired_at: null,
      canceled_at: null,
      failed_at: null,
      replaced_at: null,
      replaced_by: null,
      replaces: null,
      asset_id: assetId(fields.symbol),
      asset_class: fields.symbol.includes("/") ? "crypto" : "us_equity",
      notional: null,
      filled_qty: "0",
      filled_avg_price: null,
      order_type: fields.type,
      position_intent: fields.side === "buy" ? "buy_to_open" : "sell_to_close",
      extended_hours: false,
      legs: null,
      trail_percent: null,
      trail_price: null,
      hwm: null,
      ...fields,
    };
    byId.set(order.id, order);
    return order;
  }

  function fill(order: AlpacaOrderJson, qty: string, price: string) {
    const before = Number(order.filled_qty);
    const add = Number(qty);
    const total = before + add;
    const average = (before * Number(order.filled_avg_price ?? 0) + add * Number(price)) / total;
    const at = timestamp();
    order.filled_qty = decimal(total);
    order.filled_avg_price = decimal(average);
    order.status = total >= Number(order.qty) ? "filled" : "partially_filled";
    order.updated_at = at;
    if (order.status === "filled") order.filled_at = at;
    book(order.symbol, order.side === "buy" ? add : -add, Number(price));
    // Bracket: the exits wake when the entry fills; one exit filling cancels the other.
    for (const leg of order.legs ?? []) {
      if (order.status === "filled" && leg.status === "held") leg.status = "new";
    }
    const parent = [...orders.values()].find((o) => o.legs?.includes(order));
    if (parent && order.status === "filled") {
      for (const sibling of parent.legs ?? []) {
        if (sibling !== order && OPEN_STATUSES.has(sibling.status)) markCanceled(sibling);
      }
    }
  }

  function book(symbol: string, qty: number, price: number) {
    const position = positions.get(symbol) ?? { qty: 0, avg: 0 };
    const next = position.qty + qty;
    if (next === 0) positions.delete(symbol);
    else if (Math.sign(next) !== Math.sign(position.qty)) {
      positions.set(symbol, { qty: next, avg: price });
    } else if (Math.abs(next) > Math.abs(position.qty)) {
      positions.set(symbol, {
        qty: next,
        avg: (position.qty * position.avg + qty * price) / next,
      });
    } else positions.set(symbol, { qty: next, avg: position.avg });
    cash -= qty * price;
  }

  function cancel(order: AlpacaOrderJson): Response {
    if (!OPEN_STATUSES.has(order.status)) {
      return json({ code: 42210000, message: "order is not cancelable" }, { status: 422 });
    }
    markCanceled(order);
    for (const leg of order.legs ?? []) {
      if (OPEN_STATUSES.has(leg.status)) markCanceled(leg);
    }
    return new Response(null, { status: 204 });
  }

  function markCanceled(order: AlpacaOrderJson) {
    const at = timestamp();
    order.status = "canceled";
    order.canceled_at = at;
    order.updated_at = at;
  }

  function account() {
    let marketValue = 0;
    for (const [symbol, position] of positions) {
      marketValue += position.qty * Number(prices.get(symbol) ?? position.avg);
    }
    return {
      id: "e6fe16f3-64a4-4921-8928-cadf02f92f98",
      account_number: "PA3FAKE0ALPC",
      status: "ACTIVE",
      crypto_status: "ACTIVE",
      currency: "USD",
      cash: decimal(cash),
      buying_power: decimal(Math.max(0, cash)),
      regt_buying_power: decimal(Math.max(0, cash)),
      non_marginable_buying_power: decimal(Math.max(0, cash)),
      equity: decimal(cash + marketValue),
      last_equity: decimal(cash + marketValue),
      portfolio_value: decimal(cash + marketValue),
      long_market_value: decimal(Math.max(0, marketValue)),
      short_market_value: decimal(Math.min(0, marketValue)),
      initial_margin: "0",
      maintenance_margin: "0",
      last_maintenance_margin: "0",
      sma: "0",
      multiplier: "1",
      daytrade_count: 0,
      pattern_day_trader: false,
      trading_blocked: false,
      transfers_blocked: false,
      account_blocked: false,
      trade_suspended_by_user: false,
      shorting_enabled: true,
      created_at: "2024-01-02T15:04:05.999999Z",
    };
  }

  function positionList() {
    return [...positions].map(([symbol, position]) => {
      const current = Number(prices.get(symbol) ?? position.avg);
      const costBasis = position.qty * position.avg;
      const marketValue = position.qty * current;
      return {
        asset_id: assetId(symbol),
        symbol,
        exchange: symbol.includes("/") ? "CRYPTO" : "NASDAQ",
        asset_class: symbol.includes("/") ? "crypto" : "us_equity",
        asset_marginable: true,
        qty: decimal(position.qty),
        qty_available: decimal(position.qty),
        avg_entry_price: decimal(position.avg),
        side: position.qty > 0 ? "long" : "short",
        market_value: decimal(marketValue),
        cost_basis: decimal(costBasis),
        unrealized_pl: decimal(marketValue - costBasis),
        unrealized_plpc: decimal(costBasis === 0 ? 0 : (marketValue - costBasis) / costBasis),
        unrealized_intraday_pl: decimal(marketValue - costBasis),
        unrealized_intraday_plpc: "0",
        current_price: decimal(current),
        lastday_price: decimal(current),
        change_today: "0",
      };
    });
  }

  function clock() {
    const at = new Date(now());
    const day = 24 * 60 * 60 * 1000;
    return {
      timestamp: at.toISOString(),
      is_open: options.marketOpen ?? true,
      next_open: new Date(at.getTime() + day).toISOString(),
      next_close: new Date(at.getTime() + day / 4).toISOString(),
    };
  }

  function timestamp() {
    return new Date(now()).toISOString();
  }

  let closed: Promise<void> | undefined;
  function close(): Promise<void> {
    closed ??= (async () => {
      closing.abort();
      listener.close();
      for (const { client, upstream } of links.values()) {
        closeQuietly(client);
        closeQuietly(upstream);
      }
      await accepting;
      await Promise.all(pumps);
      await server.shutdown();
    })();
    return closed;
  }

  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    orders,
    faults: {
      add: (fault) => void queue.push(fault),
      clear: () => void queue.splice(0),
      get pending() {
        return queue.length;
      },
    },
    requests,
    setPrice(symbol, price) {
      prices.set(symbol, price);
    },
    addKey(keyId, secretKey) {
      keys.set(keyId, secretKey);
    },
    fillOrder(id, qty, price) {
      const order = byId.get(id) ?? orders.get(id);
      if (!order) throw new Error(`Cannot fill order "${id}": no such order at the fake`);
      const left = Number(order.qty) - Number(order.filled_qty);
      fill(
        order,
        qty ?? decimal(left),
        price ?? order.limit_price ?? prices.get(order.symbol) ?? order.stop_price ?? "0",
      );
      return order;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function json(body: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=UTF-8");
  headers.set("x-request-id", crypto.randomUUID().replaceAll("-", ""));
  return new Response(JSON.stringify(body), { ...init, headers });
}

function orderNotFound(): Response {
  return json({ code: 40410000, message: "order not found" }, { status: 404 });
}

function optional(value: unknown): string | null {
  return value === undefined || value === null ? null : String(value);
}

/** A number as Alpaca writes it: a decimal string without float noise. */
function decimal(value: number): string {
  return String(Number(value.toFixed(9)));
}

/** A stable fake asset id per symbol. */
function assetId(symbol: string): string {
  let hash = 0;
  for (const char of symbol) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  const hex = hash.toString(16).padStart(8, "0");
  return `${hex}-0000-4000-8000-${hex}0000`;
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

/** True after `ms`, false early when `signal` aborts; leaves no timer behind either way. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(true), ms);
    const onAbort = () => done(false);
    signal.addEventListener("abort", onAbort, { once: true });
    function done(slept: boolean) {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(slept);
    }
  });
}

function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
