/**
 * Pre-trade risk checks: the limits stored per broker account and the one function that judges
 * an order against them before it reaches the broker.
 */
import { z } from "zod";
import type { OrderSide } from "../brokers/broker.ts";
import { describeSession, isInSession, TradingSessionSchema } from "./trading_session.ts";

/** The maximum signal age, in seconds, when an account sets none. */
export const DEFAULT_MAX_SIGNAL_AGE_SECONDS = 60;

function positiveNumber(key: string) {
  const error = `"${key}" must be a positive number`;
  return z.number({ error }).positive({ error }).refine(Number.isFinite, { error });
}

/**
 * The risk limits stored as JSON per broker account. Every key is optional; unknown keys are
 * rejected so that a typo never silently disables a limit.
 */
export const RiskLimitsSchema = z.strictObject({
  /** Largest quantity of one order. */
  max_order_quantity: positiveNumber("max_order_quantity").optional(),
  /** Largest absolute position after an order, per symbol. */
  max_position: positiveNumber("max_position").optional(),
  /** Loss for the day (account currency) from which new exposure is refused. */
  max_daily_loss: positiveNumber("max_daily_loss").optional(),
  /** Broker symbols or roots the account may trade, any case. */
  allowed_symbols: z.array(
    z.string({ error: '"allowed_symbols" must hold symbols as strings' }).trim().min(1, {
      error: '"allowed_symbols" must not hold an empty symbol',
    }),
    { error: '"allowed_symbols" must be an array of symbols' },
  ).min(1, { error: '"allowed_symbols" must list at least one symbol; omit it to allow all' })
    .optional(),
  /** When orders may be placed. */
  trading_session: TradingSessionSchema.optional(),
  /** Oldest signal, in seconds since it was received, that may still become an order. */
  max_signal_age_seconds: z.int({
    error: '"max_signal_age_seconds" must be a positive whole number',
  })
    .positive({ error: '"max_signal_age_seconds" must be a positive whole number' })
    .default(DEFAULT_MAX_SIGNAL_AGE_SECONDS),
}, {
  error: (issue) =>
    issue.code === "unrecognized_keys"
      ? `Unknown risk limit ${issue.keys.map((k) => `"${k}"`).join(", ")}`
      : issue.code === "invalid_type"
      ? "Risk limits must be a JSON object"
      : undefined,
});

/** Risk limits after parsing (`max_signal_age_seconds` filled in with its default). */
export type RiskLimits = z.output<typeof RiskLimitsSchema>;

/** The rules, in the order they are checked. */
export type RiskRule =
  | "global_kill_switch"
  | "account_kill_switch"
  | "max_signal_age"
  | "allowed_symbols"
  | "trading_session"
  | "max_order_quantity"
  | "max_position"
  | "max_daily_loss";

/** What {@linkcode checkRisk} needs to know about the order and the account. */
export interface RiskContext {
  /** Epoch ms now. */
  now: number;
  /** Epoch ms when the signal was received. */
  receivedAt: number;
  globalKillSwitch: boolean;
  accountKillSwitch: boolean;
  /** The broker symbol after mapping (`MNQZ6`). */
  symbol: string;
  /** Its root (`MNQ`). */
  root: string;
  side: OrderSide;
  /** Positive. */
  quantity: number;
  /** Signed position in this symbol before the order. */
  positionQuantity: number;
  /** Realized + unrealized P&L today; negative is a loss. */
  dailyPnl: number;
}

/** The verdict: go, or the first rule that failed with a sentence for the trader. */
export type RiskVerdict = { ok: true } | { ok: false; rule: RiskRule; reason: string };

/**
 * Checks an order against the account's limits, in the order of {@linkcode RiskRule}; the first
 * failure wins. Boundaries: a signal exactly `max_signal_age_seconds` old, a quantity equal to
 * `max_order_quantity` and a resulting position equal to `max_position` are allowed; a daily
 * loss equal to `max_daily_loss` blocks new exposure. Orders that do not increase the absolute
 * position (reducing, closing, flipping to a smaller size) pass `max_position` and
 * `max_daily_loss`.
 */
export function checkRisk(limits: RiskLimits, ctx: RiskContext): RiskVerdict {
  if (!Number.isFinite(ctx.quantity) || ctx.quantity <= 0) {
    throw new RangeError(`Cannot check risk: quantity "${ctx.quantity}" is not a positive number`);
  }
  for (const key of ["now", "receivedAt", "positionQuantity", "dailyPnl"] as const) {
    if (!Number.isFinite(ctx[key])) {
      throw new RangeError(`Cannot check risk: ${key} "${ctx[key]}" is not a finite number`);
    }
  }

  if (ctx.globalKillSwitch) {
    return fail(
      "global_kill_switch",
      "Trading is halted for all accounts by the global kill switch",
    );
  }
  if (ctx.accountKillSwitch) {
    return fail("account_kill_switch", "Trading is halted for this account by its kill switch");
  }

  const maxAge = limits.max_signal_age_seconds ?? DEFAULT_MAX_SIGNAL_AGE_SECONDS;
  const ageSeconds = (ctx.now - ctx.receivedAt) / 1000;
  if (ageSeconds > maxAge) {
    return fail(
      "max_signal_age",
      `Signal is ${formatSeconds(ageSeconds)} s old; the maximum age is ${maxAge} s`,
    );
  }

  if (limits.allowed_symbols) {
    const wanted = [ctx.symbol.toUpperCase(), ctx.root.toUpperCase()];
    const allowed = limits.allowed_symbols.some((s) => wanted.includes(s.toUpperCase()));
    if (!allowed) {
      return fail(
        "allowed_symbols",
        `Symbol "${ctx.symbol}" is not among the allowed symbols (${
          limits.allowed_symbols.join(", ")
        })`,
      );
    }
  }

  if (limits.trading_session && !isInSession(limits.trading_session, new Date(ctx.now))) {
    return fail(
      "trading_session",
      `Outside the trading session (${describeSession(limits.trading_session)})`,
    );
  }

  if (limits.max_order_quantity !== undefined && ctx.quantity > limits.max_order_quantity) {
    return fail(
      "max_order_quantity",
      `Quantity ${formatQuantity(ctx.quantity)} exceeds the maximum order quantity of ${
        formatQuantity(limits.max_order_quantity)
      }`,
    );
  }

  const after = ctx.positionQuantity + (ctx.side === "buy" ? ctx.quantity : -ctx.quantity);
  const increasesExposure = Math.abs(after) > Math.abs(ctx.positionQuantity);

  if (
    limits.max_position !== undefined && increasesExposure && Math.abs(after) > limits.max_position
  ) {
    return fail(
      "max_position",
      `Position would become ${formatQuantity(after)}, beyond the maximum position of ${
        formatQuantity(limits.max_position)
      }`,
    );
  }

  if (
    limits.max_daily_loss !== undefined && increasesExposure &&
    ctx.dailyPnl <= -limits.max_daily_loss
  ) {
    return fail(
      "max_daily_loss",
      `Daily loss of ${formatMoney(-ctx.dailyPnl)} reached the limit of ${
        formatMoney(limits.max_daily_loss)
      }; only orders that reduce a position are allowed`,
    );
  }

  return { ok: true };
}

function fail(rule: RiskRule, reason: string): RiskVerdict {
  return { ok: false, rule, reason };
}

/** Whole seconds as they are; otherwise rounded up to a tenth, so "60.1 s" never reads as 60. */
function formatSeconds(seconds: number): string {
  return Number.isInteger(seconds) ? String(seconds) : (Math.ceil(seconds * 10) / 10).toFixed(1);
}

function formatQuantity(quantity: number): string {
  return quantity.toLocaleString("en-US", { maximumFractionDigits: 10 });
}

function formatMoney(amount: number): string {
  return amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
