/**
 * The Alpaca adapter of the {@linkcode Broker} port, over `@alpacahq/alpaca-trade-api` v4 (its
 * REST build, which is what Deno resolves). It builds the SDK's generated API classes on one
 * `trading.Configuration`, so the host can be pointed anywhere (`basePath`), and it leaves the
 * SDK's retry and rate limiter off: the executor owns retries (backoff, breaker, signal age) and
 * must see every failure. The SDK never replays a POST in any case.
 *
 * Status normalization (Alpaca's word is kept in `brokerStatus`):
 * - `new`, `accepted`, `pending_new`, `accepted_for_bidding`, `pending_cancel`,
 *   `pending_replace`, `calculated`, `held` → "pending" ("partially_filled" once anything filled).
 * - `done_for_day` → "pending" / "partially_filled": not final, a GTC order resumes next session.
 * - `stopped` → "pending": Alpaca guarantees an execution that has not happened yet.
 * - `suspended` → "pending": not eligible for trading for now, but not final either.
 * - `replaced` → "canceled": this order id is over; `reason` names the replacing order.
 * - `canceled`, `expired`, `rejected`, `filled`, `partially_filled` → themselves.
 * - an unknown word → "pending" (keep watching rather than wrongly call it final).
 *
 * Fills: Alpaca's order object carries totals, not executions. A non-final order reports
 * `fills: []` with `filledQuantity`/`averageFillPrice`. Once final with anything filled, it reports
 * exactly one aggregate fill, id `${order.id}:fill`, of the whole filled quantity at the average
 * price (fee "0": Alpaca books fees as account activities, not on orders). That fill never changes
 * afterwards, so journaling fills by id records each order's executions exactly once.
 */

import { ApiError, FetchError, trading } from "@alpacahq/alpaca-trade-api";
import type { Logger } from "../lib/log.ts";
import {
  type Broker,
  type BrokerAccount,
  BrokerError,
  type BrokerErrorKind,
  type BrokerFill,
  type BrokerOrder,
  type BrokerPosition,
  type MarketClock,
  OPEN_ORDERS_LIMIT,
  type OrderRequest,
  type OrderStatus,
  type OrderType,
  TERMINAL_STATUSES,
} from "./broker.ts";

/** Alpaca's paper trading host. */
export const ALPACA_PAPER_URL = "https://paper-api.alpaca.markets";
/** Alpaca's live trading host. */
export const ALPACA_LIVE_URL = "https://api.alpaca.markets";
/** Default deadline of one Alpaca call. */
export const ALPACA_TIMEOUT_MS = 10_000;

/** Options of {@linkcode createAlpacaBroker}. */
export interface AlpacaBrokerOptions {
  keyId: string;
  secretKey: string;
  /** Paper or live account; picks the host unless `baseUrl` is given. */
  paper: boolean;
  /** Another host (a fake in tests, a staging gateway). */
  baseUrl?: string;
  /** Deadline of each call, network and body included (default 10 s). */
  timeoutMs?: number;
  log: Logger;
}

type AlpacaOrder = trading.Order | trading.OrderLeg;

const PENDING_STATUSES = new Set([
  "new",
  "accepted",
  "pending_new",
  "accepted_for_bidding",
  "pending_cancel",
  "pending_replace",
  "calculated",
  "held",
  "done_for_day",
  "stopped",
  "suspended",
]);

/** Alpaca's 403 code for an order the account may not place (buying power, PDT, shorting). */
const FORBIDDEN_ORDER_CODE = 40310000;

/**
 * Creates the Alpaca broker.
 *
 * @example
 * const broker = createAlpacaBroker({ keyId, secretKey, paper: true, log });
 * const order = await broker.placeOrder({
 *   clientOrderId: signal.id, symbol: "AAPL", side: "buy", quantity: "1",
 *   type: "market", timeInForce: "day",
 * });
 */
export function createAlpacaBroker(options: AlpacaBrokerOptions): Broker {
  const { secretKey } = options;
  const log = options.log.child("alpaca", { paper: options.paper });
  const config = new trading.Configuration({
    basePath: (options.baseUrl ?? (options.paper ? ALPACA_PAPER_URL : ALPACA_LIVE_URL))
      .replace(/\/+$/, ""),
    keyId: options.keyId,
    secret: secretKey,
    timeoutMs: options.timeoutMs ?? ALPACA_TIMEOUT_MS,
    // No `retry` and no `rateLimit`: both stay off on a bare Configuration.
  });
  const ordersApi = new trading.OrdersApi(config);
  const accountsApi = new trading.AccountsApi(config);
  const positionsApi = new trading.PositionsApi(config);
  const clockApi = new trading.ClockApi(config);

  /** Runs one SDK call; any failure becomes a classified BrokerError. */
  async function call<T>(
    action: string,
    run: () => Promise<T>,
    ambiguousOnNoAnswer = false,
  ): Promise<T> {
    try {
      return await run();
    } catch (error) {
      const failure = classify(error, ambiguousOnNoAnswer, secretKey);
      // A miss is an answer (the reconcile lookup expects them), not a failure worth a warning.
      const level = failure.kind === "not_found" ? "debug" : "warning";
      log[level]("Alpaca call failed", {
        action,
        kind: failure.kind,
        status: failure.status,
        reason: failure.reason,
        ambiguous: failure.ambiguous,
        requestId: error instanceof ApiError ? error.requestId : undefined,
      });
      throw new BrokerError(`${action} at Alpaca: ${failure.reason}`, {
        ...failure,
        cause: error instanceof ApiError ? undefined : error,
      });
    }
  }

  return {
    kind: "alpaca",

    async placeOrder(request, signal) {
      const order = await call(
        `Cannot place order "${request.clientOrderId}"`,
        () => ordersApi.postOrder({ postOrderRequest: toAlpacaOrder(request) }, { signal }),
        true,
      );
      const placed = toBrokerOrder(order, log);
      log.info("Order placed at Alpaca", {
        clientOrderId: placed.clientOrderId,
        orderId: placed.id,
        status: placed.brokerStatus,
      });
      return placed;
    },

    async getOrderByClientId(clientOrderId, signal) {
      try {
        const order = await call(
          `Cannot look up order "${clientOrderId}"`,
          () => ordersApi.getOrderByClientOrderId({ clientOrderId }, { signal }),
        );
        return toBrokerOrder(order, log);
      } catch (error) {
        if (error instanceof BrokerError && error.kind === "not_found") return null;
        throw error;
      }
    },

    async getOrder(id, signal) {
      const order = await call(
        `Cannot get order "${id}"`,
        () => ordersApi.getOrderByOrderID({ orderId: id, nested: true }, { signal }),
      );
      return toBrokerOrder(order, log);
    },

    async openOrders(signal) {
      const orders = await call(
        "Cannot list open orders",
        () =>
          ordersApi.getAllOrders(
            { status: "open", limit: OPEN_ORDERS_LIMIT, nested: false, direction: "desc" },
            { signal },
          ),
      );
      return orders.map((order) => toBrokerOrder(order, log));
    },

    async cancelOrder(id, signal) {
      await call(`Cannot cancel order "${id}"`, async () => {
        // The raw call, because only `value()` releases the response and its deadline timer.
        const response = await ordersApi.deleteOrderByOrderIDRaw({ orderId: id }, { signal });
        await response.value();
      });
    },

    async account(signal) {
      const account = await call(
        "Cannot read the account",
        () => accountsApi.getAccount({ signal }),
      );
      return {
        currency: account.currency ?? "USD",
        equity: account.equity ?? "0",
        cash: account.cash ?? "0",
        buyingPower: account.buyingPower ?? "0",
      } satisfies BrokerAccount;
    },

    async positions(signal) {
      const positions = await call(
        "Cannot read positions",
        () => positionsApi.getAllOpenPositions({ signal }),
      );
      return positions.map((p): BrokerPosition => ({
        symbol: p.symbol,
        quantity: signedQuantity(p.qty, p.side),
        averageEntryPrice: p.avgEntryPrice,
        unrealizedPnl: p.unrealizedPl,
      }));
    },

    async clock(signal) {
      const clock = await call(
        "Cannot read the market clock",
        () => clockApi.legacyClock({ signal }),
      );
      return {
        isOpen: clock.isOpen,
        nextOpen: clock.nextOpen,
        nextClose: clock.nextClose,
      } satisfies MarketClock;
    },
  };
}

/** Maps our order request to Alpaca's POST /v2/orders body (the SDK writes it as snake_case). */
export function toAlpacaOrder(request: OrderRequest): trading.PostOrderRequest {
  const body: trading.PostOrderRequest = {
    clientOrderId: request.clientOrderId,
    symbol: request.symbol,
    qty: request.quantity,
    side: request.side,
    type: request.type,
    timeInForce: request.timeInForce,
  };
  if (request.limitPrice !== undefined) body.limitPrice = request.limitPrice;
  if (request.stopPrice !== undefined) body.stopPrice = request.stopPrice;
  if (request.takeProfit || request.stopLoss) {
    body.orderClass = "bracket";
    if (request.takeProfit) body.takeProfit = { limitPrice: request.takeProfit.limitPrice };
    if (request.stopLoss) {
      body.stopLoss = { stopPrice: request.stopLoss.stopPrice };
      if (request.stopLoss.limitPrice !== undefined) {
        body.stopLoss.limitPrice = request.stopLoss.limitPrice;
      }
    }
  }
  return body;
}

/** Maps an Alpaca order (or bracket leg) to ours; see the module doc for statuses and fills. */
export function toBrokerOrder(order: AlpacaOrder, log?: Logger): BrokerOrder {
  const brokerStatus = order.status ?? "new";
  const filledQuantity = order.filledQty ?? "0";
  const anyFilled = Number(filledQuantity) > 0;
  const status = normalizeStatus(brokerStatus, anyFilled);
  if (status === "pending" && !PENDING_STATUSES.has(brokerStatus)) {
    log?.warning("Unknown Alpaca order status, treated as pending", {
      orderId: order.id,
      brokerStatus,
    });
  }
  const averageFillPrice = anyFilled ? order.filledAvgPrice ?? undefined : undefined;
  const fills: BrokerFill[] = [];
  if (TERMINAL_STATUSES.has(status) && anyFilled && averageFillPrice !== undefined) {
    fills.push({
      id: `${order.id}:fill`,
      quantity: filledQuantity,
      price: averageFillPrice,
      fee: "0",
      at: order.filledAt ?? order.updatedAt ?? order.submittedAt ?? new Date(0),
    });
  }
  const mapped: BrokerOrder = {
    id: order.id ?? "",
    clientOrderId: order.clientOrderId ?? "",
    symbol: order.symbol ?? "",
    side: order.side === "sell" ? "sell" : "buy",
    quantity: order.qty ?? "0",
    type: orderType(order.type),
    status,
    brokerStatus,
    filledQuantity,
    fills,
  };
  if (averageFillPrice !== undefined) mapped.averageFillPrice = averageFillPrice;
  if (order.submittedAt) mapped.submittedAt = order.submittedAt;
  if (order.updatedAt) mapped.updatedAt = order.updatedAt;
  if (brokerStatus === "replaced") {
    mapped.reason = order.replacedBy ? `replaced by order "${order.replacedBy}"` : "replaced";
  }
  const legs = (order.legs ?? []) as AlpacaOrder[];
  if (legs.length > 0) mapped.legs = legs.map((leg) => toBrokerOrder(leg, log));
  return mapped;
}

/** Alpaca's status word as ours; `anyFilled` turns a working order into "partially_filled". */
export function normalizeStatus(brokerStatus: string, anyFilled: boolean): OrderStatus {
  switch (brokerStatus) {
    case "filled":
      return "filled";
    case "partially_filled":
      return "partially_filled";
    case "canceled":
    case "replaced":
      return "canceled";
    case "expired":
      return "expired";
    case "rejected":
      return "rejected";
    default:
      return anyFilled ? "partially_filled" : "pending";
  }
}

function orderType(type: string | undefined): OrderType {
  switch (type) {
    case "limit":
    case "stop":
    case "stop_limit":
      return type;
    case "trailing_stop":
      return "stop";
    default:
      return "market";
  }
}

/** Alpaca writes short quantities negative already; make sure, from `side`. */
function signedQuantity(qty: string, side: string): string {
  const magnitude = qty.replace(/^[-+]/, "");
  return side === "short" && Number(magnitude) !== 0 ? `-${magnitude}` : magnitude;
}

type Failure = {
  kind: BrokerErrorKind;
  status?: number;
  reason: string;
  ambiguous: boolean;
  retryAfterS?: number;
};

/**
 * Classifies what the SDK threw. `ambiguousOnNoAnswer` marks calls that change state (an order
 * POST): without a clear answer the change may have happened.
 */
function classify(error: unknown, ambiguousOnNoAnswer: boolean, secret: string): Failure {
  if (error instanceof ApiError) {
    const status = error.status;
    const reason = scrub(error.message || `HTTP ${status}`, secret);
    if (status === 429) {
      return {
        kind: "rate_limited",
        status,
        reason,
        ambiguous: false,
        retryAfterS: error.retryAfterMs === undefined
          ? undefined
          : Math.ceil(error.retryAfterMs / 1000),
      };
    }
    if (status >= 500) {
      return { kind: "unavailable", status, reason, ambiguous: ambiguousOnNoAnswer };
    }
    if (status === 401) return { kind: "auth", status, reason, ambiguous: false };
    if (status === 403) {
      // 403 is also how Alpaca refuses an order the account cannot afford or may not place.
      const kind = Number(error.code) === FORBIDDEN_ORDER_CODE ? "rejected" : "auth";
      return { kind, status, reason, ambiguous: false };
    }
    if (status === 404) return { kind: "not_found", status, reason, ambiguous: false };
    if ((status === 422 || status === 400) && /client_order_id must be unique/i.test(reason)) {
      return { kind: "duplicate", status, reason, ambiguous: false };
    }
    return { kind: "rejected", status, reason, ambiguous: false };
  }
  // FetchError (no answer: refused, reset, timeout, abort) or a body that broke mid-read.
  return { kind: "network", reason: networkReason(error, secret), ambiguous: ambiguousOnNoAnswer };
}

function networkReason(error: unknown, secret: string): string {
  const cause = error instanceof FetchError ? error.cause : error;
  if (cause instanceof Error || cause instanceof DOMException) {
    if (cause.name === "TimeoutError") return scrub(cause.message, secret).toLowerCase();
    if (cause.name === "AbortError") return "request aborted";
  }
  // The innermost cause says what happened ("connection closed before message completed").
  let inner: unknown = cause;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  const text = inner instanceof Error ? inner.message : String(inner);
  return scrub(`no answer: ${text.split(": ").at(-1) || text}`, secret);
}

/** Never let the secret key reach a message, however it got there. */
function scrub(text: string, secret: string): string {
  return secret ? text.replaceAll(secret, "[REDACTED]") : text;
}
