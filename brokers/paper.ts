/**
 * The built-in paper broker: a simulator behind the same {@linkcode Broker} port as Alpaca.
 * Market orders fill at the order's reference price (the signal's price, or the last known
 * price) moved against the trader by the slippage, minus fees; limit and stop orders rest until
 * a later price reaches them; a bracket's two legs rest after the entry fills and cancel each
 * other (OCO). Like a real broker it refuses a reused client order id.
 *
 * Its book lives in memory; after a restart the executor restores the open orders from the
 * database with {@linkcode PaperBroker.restore}, bracket links included (a leg's entry and its
 * other leg, an entry's legs still to open), so a restart never lets both legs of a bracket fill.
 * A canceled order leaves the book at once and never fills. Finished orders stay readable (and
 * their client order ids refused) while they are among the last {@linkcode FINISHED_KEPT}; older
 * ones are forgotten, so a long-running process does not grow by every order it ever filled (the
 * executor has recorded them by then, and the database refuses a reused client order id).
 */
import { z } from "zod";
import type { Clock } from "../lib/clock.ts";
import { applyFill, FLAT, type Position, round, toDecimal } from "../lib/positions.ts";
import {
  type Broker,
  type BrokerAccount,
  BrokerError,
  type BrokerFill,
  type BrokerOrder,
  type BrokerPosition,
  type MarketClock,
  OPEN_ORDERS_LIMIT,
  type OrderRequest,
  type OrderSide,
  type OrderType,
  TERMINAL_STATUSES,
} from "./broker.ts";

/**
 * Finished orders the book keeps (beyond those still open), oldest forgotten first: a few
 * megabytes, and minutes of history even at a thousand fills a second.
 */
export const FINISHED_KEPT = 10_000;
/** Forgetting runs once this many more have finished, not on every order. */
const FORGET_SLACK = 1_000;

/** Paper settings per account, stored as JSON (snake_case). */
export const PaperSettingsSchema = z.object({
  slippage_bps: z.number().min(0).max(1000).default(0),
  fee_per_unit: z.number().min(0).default(0),
  fee_bps: z.number().min(0).max(1000).default(0),
  starting_cash: z.number().positive().default(100_000),
}).strict();

/** Parsed paper settings. */
export type PaperSettings = z.output<typeof PaperSettingsSchema>;

interface Resting {
  order: BrokerOrder;
  limitPrice?: number;
  stopPrice?: number;
  /** A stop-limit whose stop has triggered behaves as a limit. */
  triggered: boolean;
  /** The other leg of a bracket, canceled when this one fills. */
  ocoWith?: string;
  /** Legs to open once this (entry) order fills. */
  pendingLegs?: { takeProfit?: string; stopLoss?: { stop: string; limit?: string } };
}

/**
 * An open order to put back after a restart. A bracket leg carries `parentClientOrderId` and, when
 * its other leg is open too, `ocoWith`; an entry that has not filled yet carries the legs it
 * opens when it does.
 */
export type RestoredOrder = BrokerOrder & Pick<OrderRequest, "takeProfit" | "stopLoss">;

/** Options of {@linkcode PaperBroker}. */
export interface PaperBrokerOptions {
  settings: PaperSettings;
  clock: Clock;
  /** Broker order ids; random by default. */
  newId?: () => string;
}

/** The paper broker. */
export class PaperBroker implements Broker {
  readonly kind = "paper" as const;
  #settings: PaperSettings;
  #clock: Clock;
  #newId: () => string;
  #orders = new Map<string, BrokerOrder>(); // by broker id
  #byClientId = new Map<string, string>();
  #resting = new Map<string, Resting>(); // by broker id
  #lastPrice = new Map<string, number>();
  #positions = new Map<string, Position>();

  constructor(options: PaperBrokerOptions) {
    this.#settings = options.settings;
    this.#clock = options.clock;
    this.#newId = options.newId ?? (() => `paper-${crypto.randomUUID()}`);
  }

  /** Puts back orders that were open before a restart, with their bracket links, and the positions. */
  restore(open: RestoredOrder[], positions: BrokerPosition[] = []): void {
    for (const restored of open) {
      if (TERMINAL_STATUSES.has(restored.status)) continue;
      const { takeProfit, stopLoss, ...order } = restored;
      this.#remember(order);
      this.#resting.set(order.id, {
        order,
        limitPrice: order.type === "limit" || order.type === "stop_limit"
          ? Number(order.limitPrice)
          : undefined,
        stopPrice: order.type === "stop" || order.type === "stop_limit"
          ? Number(order.stopPrice)
          : undefined,
        triggered: false,
        ocoWith: order.ocoWith,
        pendingLegs: order.leg ? undefined : pendingLegs({ takeProfit, stopLoss }),
      });
    }
    for (const p of positions) {
      this.#positions.set(p.symbol, {
        quantity: Number(p.quantity),
        averagePrice: Number(p.averageEntryPrice),
        realizedPnl: 0,
      });
    }
  }

  placeOrder(request: OrderRequest): Promise<BrokerOrder> {
    if (this.#byClientId.has(request.clientOrderId)) {
      return Promise.reject(
        new BrokerError(
          `Cannot place order "${request.clientOrderId}" at the paper broker: client order id must be unique`,
          {
            kind: "duplicate",
            status: 422,
            reason: "client order id must be unique",
          },
        ),
      );
    }
    const reference = request.referencePrice
      ? Number(request.referencePrice)
      : this.#lastPrice.get(request.symbol);
    if (request.type === "market" && reference === undefined) {
      return Promise.reject(
        new BrokerError(
          `Cannot place order "${request.clientOrderId}" at the paper broker: no price for "${request.symbol}"`,
          {
            kind: "rejected",
            status: 422,
            reason:
              `No price to fill a market order for ${request.symbol}: send "price": "{{close}}" in the alert`,
          },
        ),
      );
    }
    const now = new Date(this.#clock.now());
    const order: BrokerOrder = {
      id: this.#newId(),
      clientOrderId: request.clientOrderId,
      symbol: request.symbol,
      side: request.side,
      quantity: request.quantity,
      type: request.type,
      status: "pending",
      brokerStatus: "accepted",
      filledQuantity: "0",
      fills: [],
      submittedAt: now,
      updatedAt: now,
      limitPrice: request.limitPrice,
      stopPrice: request.stopPrice,
    };
    this.#remember(order);
    const resting: Resting = {
      order,
      limitPrice: request.limitPrice ? Number(request.limitPrice) : undefined,
      stopPrice: request.stopPrice ? Number(request.stopPrice) : undefined,
      triggered: false,
      pendingLegs: pendingLegs(request),
    };
    if (reference !== undefined) this.#lastPrice.set(request.symbol, reference);
    this.#resting.set(order.id, resting);
    if (reference !== undefined) this.#evaluate(resting, reference, now);
    return Promise.resolve(this.#copy(order));
  }

  /**
   * Moves the market: every resting order on `symbol` that the price reaches fills (or
   * triggers). Returns the orders that changed, legs opened by fills included.
   */
  onPrice(symbol: string, price: number, at: Date): BrokerOrder[] {
    this.#lastPrice.set(symbol, price);
    const changed = new Map<string, BrokerOrder>();
    for (const resting of [...this.#resting.values()]) {
      if (resting.order.symbol !== symbol) continue;
      const before = resting.order.status;
      const legs = this.#evaluate(resting, price, at);
      if (resting.order.status !== before) changed.set(resting.order.id, resting.order);
      for (const leg of legs) changed.set(leg.id, leg);
      if (resting.order.status === "filled" && resting.ocoWith) {
        const other = this.#orders.get(resting.ocoWith);
        if (other && !TERMINAL_STATUSES.has(other.status)) {
          this.#cancel(other, at, "Canceled: the other leg of the bracket filled");
          changed.set(other.id, other);
        }
      }
    }
    return [...changed.values()].map((o) => this.#copy(o));
  }

  /** True when an order on `symbol` rests in the book (a price may fill or trigger it). */
  hasResting(symbol: string): boolean {
    for (const resting of this.#resting.values()) {
      if (resting.order.symbol === symbol) return true;
    }
    return false;
  }

  getOrderByClientId(clientOrderId: string): Promise<BrokerOrder | null> {
    const id = this.#byClientId.get(clientOrderId);
    return Promise.resolve(id ? this.#copy(this.#orders.get(id)!) : null);
  }

  getOrder(id: string): Promise<BrokerOrder> {
    const order = this.#orders.get(id);
    if (!order) {
      return Promise.reject(
        new BrokerError(`Cannot find order "${id}" at the paper broker`, {
          kind: "not_found",
          status: 404,
        }),
      );
    }
    return Promise.resolve(this.#copy(order));
  }

  openOrders(): Promise<BrokerOrder[]> {
    const open = [...this.#resting.values()].map((r) => this.#copy(r.order));
    return Promise.resolve(open.reverse().slice(0, OPEN_ORDERS_LIMIT));
  }

  cancelOrder(id: string): Promise<void> {
    const order = this.#orders.get(id);
    if (!order) {
      return Promise.reject(
        new BrokerError(`Cannot cancel order "${id}" at the paper broker: not found`, {
          kind: "not_found",
          status: 404,
        }),
      );
    }
    if (!TERMINAL_STATUSES.has(order.status)) {
      this.#cancel(order, new Date(this.#clock.now()), "Canceled by request");
    }
    return Promise.resolve();
  }

  account(): Promise<BrokerAccount> {
    let unrealized = 0;
    let realized = 0;
    for (const [symbol, p] of this.#positions) {
      const last = this.#lastPrice.get(symbol);
      if (last !== undefined) unrealized += p.quantity * (last - p.averagePrice);
      realized += p.realizedPnl;
    }
    const equity = this.#settings.starting_cash + realized + unrealized;
    return Promise.resolve({
      currency: "USD",
      equity: toDecimal(equity),
      cash: toDecimal(this.#settings.starting_cash + realized),
      buyingPower: toDecimal(Math.max(0, equity)),
    });
  }

  positions(): Promise<BrokerPosition[]> {
    return Promise.resolve(
      [...this.#positions].filter(([, p]) => p.quantity !== 0).map(([symbol, p]) => ({
        symbol,
        quantity: toDecimal(p.quantity),
        averageEntryPrice: toDecimal(p.averagePrice),
      })),
    );
  }

  clock(): Promise<MarketClock> {
    return Promise.resolve({ isOpen: true });
  }

  /** Fills or triggers `resting` at `price`; returns bracket legs it opened. */
  #evaluate(resting: Resting, price: number, at: Date): BrokerOrder[] {
    const { order } = resting;
    if (TERMINAL_STATUSES.has(order.status)) return [];
    const buy = order.side === "buy";
    let fillAt: number | undefined;
    if (order.type === "market") fillAt = price;
    else if (order.type === "limit" || (order.type === "stop_limit" && resting.triggered)) {
      const limit = resting.limitPrice!;
      if (buy ? price <= limit : price >= limit) {
        fillAt = buy ? Math.min(price, limit) : Math.max(price, limit);
      }
    } else if (order.type === "stop" || order.type === "stop_limit") {
      const stop = resting.stopPrice!;
      if (buy ? price >= stop : price <= stop) {
        if (order.type === "stop") fillAt = buy ? Math.max(price, stop) : Math.min(price, stop);
        else {
          resting.triggered = true;
          return this.#evaluate(resting, price, at);
        }
      }
    }
    if (fillAt === undefined) return [];
    this.#fill(order, slipped(fillAt, order.side, order.type, this.#settings.slippage_bps), at);
    this.#resting.delete(order.id);
    return resting.pendingLegs ? this.#openLegs(order, resting.pendingLegs, at) : [];
  }

  #fill(order: BrokerOrder, price: number, at: Date) {
    const quantity = Number(order.quantity);
    const fee = round(
      quantity * this.#settings.fee_per_unit + quantity * price * this.#settings.fee_bps / 10_000,
    );
    const fill: BrokerFill = {
      id: `${order.id}:1`,
      quantity: order.quantity,
      price: toDecimal(price),
      fee: toDecimal(fee),
      at,
    };
    order.fills = [fill];
    order.filledQuantity = order.quantity;
    order.averageFillPrice = fill.price;
    order.status = "filled";
    order.brokerStatus = "filled";
    order.updatedAt = at;
    const { position } = applyFill(this.#positions.get(order.symbol) ?? FLAT, {
      side: order.side,
      quantity,
      price,
      fee,
    });
    this.#positions.set(order.symbol, position);
  }

  #openLegs(
    entry: BrokerOrder,
    legs: NonNullable<Resting["pendingLegs"]>,
    at: Date,
  ): BrokerOrder[] {
    const exit: OrderSide = entry.side === "buy" ? "sell" : "buy";
    const opened: BrokerOrder[] = [];
    const make = (
      suffix: string,
      type: OrderType,
      prices: { limit?: string; stop?: string },
    ): BrokerOrder => {
      const order: BrokerOrder = {
        id: this.#newId(),
        clientOrderId: `${entry.clientOrderId}:${suffix}`,
        symbol: entry.symbol,
        side: exit,
        quantity: entry.quantity,
        type,
        status: "pending",
        brokerStatus: "accepted",
        filledQuantity: "0",
        fills: [],
        submittedAt: at,
        updatedAt: at,
        limitPrice: prices.limit,
        stopPrice: prices.stop,
        parentClientOrderId: entry.clientOrderId,
        leg: suffix === "tp" ? "take_profit" : "stop_loss",
      };
      this.#remember(order);
      this.#resting.set(order.id, {
        order,
        limitPrice: prices.limit ? Number(prices.limit) : undefined,
        stopPrice: prices.stop ? Number(prices.stop) : undefined,
        triggered: false,
      });
      opened.push(order);
      return order;
    };
    const tp = legs.takeProfit ? make("tp", "limit", { limit: legs.takeProfit }) : undefined;
    const sl = legs.stopLoss
      ? make("sl", legs.stopLoss.limit ? "stop_limit" : "stop", {
        stop: legs.stopLoss.stop,
        limit: legs.stopLoss.limit,
      })
      : undefined;
    if (tp && sl) {
      tp.ocoWith = sl.id;
      sl.ocoWith = tp.id;
      this.#resting.get(tp.id)!.ocoWith = sl.id;
      this.#resting.get(sl.id)!.ocoWith = tp.id;
    }
    entry.legs = opened;
    return opened;
  }

  #cancel(order: BrokerOrder, at: Date, reason: string) {
    order.status = "canceled";
    order.brokerStatus = "canceled";
    order.reason = reason;
    order.updatedAt = at;
    this.#resting.delete(order.id);
  }

  #remember(order: BrokerOrder) {
    this.#orders.set(order.id, order);
    this.#byClientId.set(order.clientOrderId, order.id);
    if (this.#orders.size > this.#resting.size + FINISHED_KEPT + FORGET_SLACK) this.#forget();
  }

  /** Forgets the oldest finished orders until {@linkcode FINISHED_KEPT} are left. */
  #forget() {
    let excess = this.#orders.size - this.#resting.size - FINISHED_KEPT;
    for (const [id, order] of this.#orders) {
      if (excess <= 0) break;
      if (this.#resting.has(id) || !TERMINAL_STATUSES.has(order.status)) continue;
      this.#orders.delete(id);
      if (this.#byClientId.get(order.clientOrderId) === id) {
        this.#byClientId.delete(order.clientOrderId);
      }
      excess--;
    }
  }

  #copy(order: BrokerOrder): BrokerOrder {
    return structuredClone(order);
  }
}

/** The legs a bracket entry opens once it fills, if it is one. */
function pendingLegs(
  bracket: Pick<OrderRequest, "takeProfit" | "stopLoss">,
): Resting["pendingLegs"] {
  const { takeProfit, stopLoss } = bracket;
  if (!takeProfit && !stopLoss) return undefined;
  return {
    takeProfit: takeProfit?.limitPrice,
    stopLoss: stopLoss ? { stop: stopLoss.stopPrice, limit: stopLoss.limitPrice } : undefined,
  };
}

/** Moves a market or stop fill price against the trader by `bps`; limit fills are not slipped. */
function slipped(price: number, side: OrderSide, type: OrderType, bps: number): number {
  if (type === "limit" || type === "stop_limit" || bps === 0) return price;
  const factor = bps / 10_000;
  return round(side === "buy" ? price * (1 + factor) : price * (1 - factor));
}
