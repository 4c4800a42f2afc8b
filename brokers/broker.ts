/**
 * The broker port. The executor talks only to this interface; the paper broker and the Alpaca
 * adapter implement it. Quantities and prices are decimal strings end to end (money is never a
 * float in a record), converted to numbers only for arithmetic inside the paper simulator.
 */

/** Which broker an account uses. */
export type BrokerKind = "paper" | "alpaca";

/** Buy or sell. */
export type OrderSide = "buy" | "sell";

/** The order types a signal can ask for. */
export type OrderType = "market" | "limit" | "stop" | "stop_limit";

/** How long an order stays working. */
export type TimeInForce = "day" | "gtc" | "ioc" | "fok" | "opg" | "cls";

/**
 * Our normalized order status. `pending` covers every "accepted but not yet filled" state of a
 * broker (new, accepted, pending_new, …). The last four are terminal.
 */
export type OrderStatus =
  | "pending"
  | "partially_filled"
  | "filled"
  | "canceled"
  | "expired"
  | "rejected";

/** Statuses after which an order never changes again. */
export const TERMINAL_STATUSES: ReadonlySet<OrderStatus> = new Set([
  "filled",
  "canceled",
  "expired",
  "rejected",
]);

/** An order to place. `clientOrderId` is the signal id, so the broker refuses a second copy. */
export interface OrderRequest {
  clientOrderId: string;
  /** The broker's symbol, after mapping (`AAPL`, `BTC/USD`, `MNQZ6`). */
  symbol: string;
  side: OrderSide;
  /** Decimal string, > 0. */
  quantity: string;
  type: OrderType;
  timeInForce: TimeInForce;
  limitPrice?: string;
  stopPrice?: string;
  /** Bracket: a take-profit limit leg. */
  takeProfit?: { limitPrice: string };
  /** Bracket: a stop-loss leg (stop, or stop-limit when `limitPrice` is given). */
  stopLoss?: { stopPrice: string; limitPrice?: string };
  /** The price the signal carried; the paper broker fills market orders at it. */
  referencePrice?: string;
}

/** One fill (execution) of an order. */
export interface BrokerFill {
  /** The broker's id of this fill, unique per order; used to journal each fill once. */
  id: string;
  quantity: string;
  price: string;
  fee: string;
  at: Date;
}

/** An order as the broker knows it. */
export interface BrokerOrder {
  /** The broker's order id. */
  id: string;
  clientOrderId: string;
  symbol: string;
  side: OrderSide;
  quantity: string;
  type: OrderType;
  status: OrderStatus;
  /** The broker's own status word, for the journal (`pending_new`, `done_for_day`, …). */
  brokerStatus: string;
  filledQuantity: string;
  /** Average fill price, when anything filled. */
  averageFillPrice?: string;
  fills: BrokerFill[];
  submittedAt?: Date;
  updatedAt?: Date;
  /** Why the broker rejected or canceled it, when it says. */
  reason?: string;
  /** Bracket legs (take profit, stop loss), when the broker reports them. */
  legs?: BrokerOrder[];
  limitPrice?: string;
  stopPrice?: string;
  /** For a bracket leg: the client order id of its entry order, and which leg it is. */
  parentClientOrderId?: string;
  leg?: "take_profit" | "stop_loss";
  /** For a bracket leg: the broker id of the other leg (one cancels the other). */
  ocoWith?: string;
}

/** Account figures for the dashboard and risk checks. */
export interface BrokerAccount {
  currency: string;
  equity: string;
  cash: string;
  buyingPower: string;
}

/** A position as the broker reports it. */
export interface BrokerPosition {
  symbol: string;
  /** Signed: positive long, negative short. */
  quantity: string;
  averageEntryPrice: string;
  unrealizedPnl?: string;
}

/** Whether the market is open, from the broker's clock. */
export interface MarketClock {
  isOpen: boolean;
  nextOpen?: Date;
  nextClose?: Date;
}

/** A broker account the executor can trade through. */
export interface Broker {
  readonly kind: BrokerKind;
  /**
   * Places an order. Throws {@linkcode BrokerError}; when `ambiguous` is true the order may or may
   * not exist at the broker, and the caller must look it up by client order id before trying again.
   */
  placeOrder(order: OrderRequest, signal?: AbortSignal): Promise<BrokerOrder>;
  /** The order with this client order id, or null when the broker has none. */
  getOrderByClientId(clientOrderId: string, signal?: AbortSignal): Promise<BrokerOrder | null>;
  /** The order with this broker id. */
  getOrder(id: string, signal?: AbortSignal): Promise<BrokerOrder>;
  /**
   * The account's open orders in one call, newest first, at most {@linkcode OPEN_ORDERS_LIMIT};
   * a bracket's legs are orders of their own here (without `legs`). An order missing from the
   * answer may have closed, or be past the limit: read it with `getOrder`.
   */
  openOrders(signal?: AbortSignal): Promise<BrokerOrder[]>;
  cancelOrder(id: string, signal?: AbortSignal): Promise<void>;
  account(signal?: AbortSignal): Promise<BrokerAccount>;
  positions(signal?: AbortSignal): Promise<BrokerPosition[]>;
  clock(signal?: AbortSignal): Promise<MarketClock>;
}

/** The most open orders {@linkcode Broker.openOrders} answers (Alpaca's own maximum). */
export const OPEN_ORDERS_LIMIT = 500;

/** What went wrong at the broker, which decides whether a retry is safe. */
export type BrokerErrorKind =
  | "network" // no answer: connection refused, reset, timeout
  | "unavailable" // 5xx
  | "rate_limited" // 429
  | "auth" // 401, 403
  | "not_found" // 404
  | "rejected" // 422 and other 4xx: the broker refused the order
  | "duplicate"; // the client order id was used before

/** Options of {@linkcode BrokerError}. */
export interface BrokerErrorOptions {
  kind: BrokerErrorKind;
  /** HTTP status, when there was a response. */
  status?: number;
  /** The broker's own reason text, shown to the trader. */
  reason?: string;
  /** The order may exist at the broker even though the call failed (a POST without an answer). */
  ambiguous?: boolean;
  /** Seconds the broker asked us to wait (Retry-After). */
  retryAfterS?: number;
  cause?: unknown;
}

/** A failed broker call, classified. */
export class BrokerError extends Error {
  override name = "BrokerError";
  readonly kind: BrokerErrorKind;
  readonly status?: number;
  readonly reason: string;
  readonly ambiguous: boolean;
  readonly retryAfterS?: number;

  constructor(message: string, options: BrokerErrorOptions) {
    super(message, { cause: options.cause });
    this.kind = options.kind;
    this.status = options.status;
    this.reason = options.reason ?? message;
    this.ambiguous = options.ambiguous ?? false;
    this.retryAfterS = options.retryAfterS;
  }

  /** Network failures, 5xx and 429 may be retried; everything else is final. */
  get retryable(): boolean {
    return this.kind === "network" || this.kind === "unavailable" || this.kind === "rate_limited";
  }
}
