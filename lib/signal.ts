/**
 * The TradingView alert payload: parsed defensively (size, depth, string lengths), validated
 * with zod into a normalized {@linkcode SignalInput}, and reduced to a dedup key.
 *
 * A TradingView alert message that fills this schema:
 *
 * ```json
 * {
 *   "key": "whk_…",
 *   "ticker": "{{exchange}}:{{ticker}}",
 *   "action": "{{strategy.order.action}}",
 *   "quantity": "{{strategy.order.contracts}}",
 *   "price": "{{close}}",
 *   "id": "{{strategy.order.id}}-{{timenow}}",
 *   "time": "{{timenow}}"
 * }
 * ```
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { OrderSide, OrderType, TimeInForce } from "../brokers/broker.ts";
import { toDecimal } from "./positions.ts";

/** Largest webhook body accepted, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Deepest JSON nesting accepted (the top-level object is depth 1). */
export const MAX_DEPTH = 5;
/** Longest string accepted anywhere in the payload. */
export const MAX_STRING_LENGTH = 10_000;

/** What the alert asks for. `close`, `exit` and `flat` close the open position. */
export const ACTIONS = ["buy", "sell", "long", "short", "close", "exit", "flat"] as const;
/** An alert action. */
export type SignalAction = typeof ACTIONS[number];

/** A validated, normalized signal. Decimal values are strings. */
export interface SignalInput {
  ticker: string;
  action: SignalAction;
  /** Buy or sell; null when the action closes the position (the side follows the position). */
  side: OrderSide | null;
  /** Null when the action closes the position (the quantity follows the position). */
  quantity: string | null;
  orderType: OrderType;
  timeInForce: TimeInForce;
  price: string | null;
  limitPrice: string | null;
  stopPrice: string | null;
  takeProfit: string | null;
  stopLoss: string | null;
  senderId: string | null;
  account: string;
  strategy: Record<string, unknown> | null;
  comment: string | null;
  time: Date | null;
}

/** A payload problem, by field, for the error body and the journal. */
export interface SignalProblem {
  field?: string;
  message: string;
}

/** The body could not be read as a payload at all (not JSON, too deep, too long). */
export class PayloadError extends Error {
  override name = "PayloadError";
  readonly problems: SignalProblem[];
  constructor(message: string, problems: SignalProblem[] = []) {
    super(message);
    this.problems = problems;
  }
}

/**
 * Parses a body as a JSON object within the limits. TradingView sends the alert message as-is,
 * as text/plain unless it is valid JSON, so the content type is not trusted either way.
 */
export function parsePayload(body: string): Record<string, unknown> {
  const text = body.replace(/^\uFEFF/, "").trim();
  if (text === "") throw new PayloadError("Cannot read the alert: the body is empty");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const why = error instanceof RangeError ? "it nests too deeply" : "it is not valid JSON";
    throw new PayloadError(
      `Cannot read the alert: ${why}; the alert message must be a JSON object like {"key": "…", "ticker": "{{ticker}}", "action": "buy", "quantity": 1}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new PayloadError("Cannot read the alert: the message must be a JSON object");
  }
  checkShape(value, 1, "");
  return value as Record<string, unknown>;
}

function checkShape(value: unknown, depth: number, path: string) {
  if (typeof value === "string") {
    if (value.length > MAX_STRING_LENGTH) {
      throw new PayloadError(
        `Cannot read the alert: a string is longer than ${MAX_STRING_LENGTH} characters`,
        [
          { field: path || undefined, message: `Longer than ${MAX_STRING_LENGTH} characters` },
        ],
      );
    }
    return;
  }
  if (value === null || typeof value !== "object") return;
  if (depth > MAX_DEPTH) {
    throw new PayloadError(`Cannot read the alert: it nests deeper than ${MAX_DEPTH} levels`, [
      { field: path || undefined, message: `Nested deeper than ${MAX_DEPTH} levels` },
    ]);
  }
  for (const [k, v] of Object.entries(value)) {
    if (k.length > MAX_STRING_LENGTH) {
      throw new PayloadError(
        `Cannot read the alert: a field name is longer than ${MAX_STRING_LENGTH} characters`,
      );
    }
    checkShape(v, depth + 1, path ? `${path}.${k}` : k);
  }
}

const PLACEHOLDER = /\{\{[^}]*\}\}/;

/** A positive decimal given as a number or a numeric string, normalized to a plain decimal string. */
const decimal = (what: string) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const text = typeof v === "number" ? numberToDecimal(v) : v.trim();
    if (typeof v === "string" && PLACEHOLDER.test(v)) {
      ctx.addIssue({
        code: "custom",
        message: `${what} is an unfilled TradingView placeholder "${v}"`,
      });
      return z.NEVER;
    }
    if (text === null || !/^\d{1,15}(\.\d{1,10})?$/.test(text) || Number(text) <= 0) {
      ctx.addIssue({
        code: "custom",
        message: `${what} must be a positive number, got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return stripZeros(text);
  });

function numberToDecimal(n: number): string | null {
  if (!Number.isFinite(n)) return null;
  return toDecimal(n);
}

function stripZeros(text: string): string {
  const [int, frac] = text.split(".") as [string, string | undefined];
  const i = int.replace(/^0+(?=\d)/, "");
  const f = frac?.replace(/0+$/, "");
  return f ? `${i}.${f}` : i;
}

const lowerEnum = <T extends readonly [string, ...string[]]>(values: T, what: string) =>
  z.string().transform((v, ctx) => {
    const normalized = v.trim().toLowerCase().replace(/[\s-]+/g, "_");
    if (PLACEHOLDER.test(v)) {
      ctx.addIssue({
        code: "custom",
        message: `${what} is an unfilled TradingView placeholder "${v}"`,
      });
      return z.NEVER;
    }
    if (!(values as readonly string[]).includes(normalized)) {
      ctx.addIssue({
        code: "custom",
        message: `${what} must be one of ${values.join(", ")}, got "${v}"`,
      });
      return z.NEVER;
    }
    return normalized as T[number];
  });

const text = (max: number, what: string) =>
  z.string().trim().min(1, `${what} must not be empty`).max(
    max,
    `${what} must be at most ${max} characters`,
  )
    .refine((v) => !PLACEHOLDER.test(v), {
      message: `${what} is an unfilled TradingView placeholder`,
    });

const FIELDS = [
  "key",
  "ticker",
  "action",
  "quantity",
  "contracts",
  "order_type",
  "price",
  "limit_price",
  "stop_price",
  "take_profit",
  "stop_loss",
  "time_in_force",
  "id",
  "account",
  "strategy",
  "comment",
  "time",
] as const;

const ALIASES: Record<string, string> = {
  qty: "quantity",
  size: "quantity",
  symbol: "ticker",
  side: "action",
  type: "order_type",
  tif: "time_in_force",
  tp: "take_profit",
  sl: "stop_loss",
};

/** One schema per field, so that every bad field is reported, not just the first. */
const FIELD_SCHEMAS = {
  key: z.string().optional(),
  ticker: z.string().transform((v, ctx) => {
    const t = v.trim().toUpperCase();
    if (PLACEHOLDER.test(v)) {
      ctx.addIssue({
        code: "custom",
        message: `ticker is an unfilled TradingView placeholder "${v}"`,
      });
      return z.NEVER;
    }
    if (!/^[A-Z0-9._!:/-]{1,64}$/.test(t)) {
      ctx.addIssue({
        code: "custom",
        message: `ticker must look like AAPL, NASDAQ:AAPL, BTCUSD or NQ1!, got "${v}"`,
      });
      return z.NEVER;
    }
    return t;
  }),
  action: lowerEnum(ACTIONS, "action"),
  quantity: decimal("quantity").optional(),
  contracts: decimal("contracts").optional(),
  order_type: lowerEnum(["market", "limit", "stop", "stop_limit"] as const, "order_type").default(
    "market",
  ),
  price: decimal("price").optional(),
  limit_price: decimal("limit_price").optional(),
  stop_price: decimal("stop_price").optional(),
  take_profit: decimal("take_profit").optional(),
  stop_loss: decimal("stop_loss").optional(),
  time_in_force: lowerEnum(["day", "gtc", "ioc", "fok", "opg", "cls"] as const, "time_in_force")
    .default("day"),
  id: z.union([text(200, "id"), z.number().transform(String)]).optional(),
  account: z.string().trim().toLowerCase().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, {
    message: "account must be a broker account alias like paper or alpaca-live",
  }).default("paper"),
  strategy: z.record(z.string(), z.unknown()).optional(),
  comment: z.string().max(1000, "comment must be at most 1000 characters").optional(),
  time: z.union([z.string(), z.number()]).transform((v, ctx) => {
    const date = typeof v === "number" ? new Date(v) : new Date(v.trim());
    if (Number.isNaN(date.getTime()) || (typeof v === "string" && PLACEHOLDER.test(v))) {
      ctx.addIssue({
        code: "custom",
        message: `time must be an ISO 8601 timestamp or epoch milliseconds, got ${
          JSON.stringify(v)
        }`,
      });
      return z.NEVER;
    }
    return date;
  }).optional(),
};

type Fields = { [K in keyof typeof FIELD_SCHEMAS]?: z.output<typeof FIELD_SCHEMAS[K]> };

/** Rules across fields, applied to the fields that are valid on their own. */
function crossFieldProblems(p: Fields, raw: Record<string, unknown>): SignalProblem[] {
  const problems: SignalProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  if (p.quantity !== undefined && p.contracts !== undefined && p.quantity !== p.contracts) {
    add("contracts", "quantity and contracts disagree; send one of them");
  }
  const type = p.order_type ?? "market";
  if ((type === "limit" || type === "stop_limit") && p.limit_price === undefined) {
    add("limit_price", `limit_price is required for a ${type} order`);
  }
  if ((type === "stop" || type === "stop_limit") && p.stop_price === undefined) {
    add("stop_price", `stop_price is required for a ${type} order`);
  }
  if (p.action === undefined) return problems;
  const closing = p.action === "close" || p.action === "exit" || p.action === "flat";
  if (!closing && raw.quantity === undefined && raw.contracts === undefined) {
    add("quantity", `quantity (or contracts) is required to ${p.action}`);
  }
  if (closing && (p.take_profit !== undefined || p.stop_loss !== undefined)) {
    add("action", `take_profit and stop_loss need an opening action, not ${p.action}`);
  }
  const side = sideOf(p.action);
  if (side && p.take_profit !== undefined && p.stop_loss !== undefined) {
    const tp = Number(p.take_profit), sl = Number(p.stop_loss);
    if (side === "buy" && tp <= sl) {
      add("take_profit", "take_profit must be above stop_loss for a buy");
    }
    if (side === "sell" && tp >= sl) {
      add("take_profit", "take_profit must be below stop_loss for a sell");
    }
  }
  return problems;
}

function sideOf(action: SignalAction): OrderSide | null {
  if (action === "buy" || action === "long") return "buy";
  if (action === "sell" || action === "short") return "sell";
  return null;
}

/** The result of validating a payload: the signal, or every problem found. */
export type SignalValidation = { ok: true; signal: SignalInput } | {
  ok: false;
  problems: SignalProblem[];
};

/** Validates a parsed payload into a {@linkcode SignalInput}; unknown fields are problems too. */
export function validateSignal(payload: Record<string, unknown>): SignalValidation {
  const problems: SignalProblem[] = [];
  for (const field of Object.keys(payload)) {
    if ((FIELDS as readonly string[]).includes(field)) continue;
    const hint = ALIASES[field.toLowerCase()];
    problems.push({
      field,
      message: hint
        ? `Unknown field "${field}"; did you mean "${hint}"?`
        : `Unknown field "${field}"`,
    });
  }
  const fields: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(FIELD_SCHEMAS)) {
    const parsed = (schema as z.ZodType).safeParse(payload[name]);
    if (parsed.success) {
      if (parsed.data !== undefined) fields[name] = parsed.data;
      continue;
    }
    for (const issue of parsed.error.issues) {
      const message = issue.code === "invalid_type" && issue.input === undefined
        ? `${name} is required`
        : issue.code === "invalid_type" || issue.code === "invalid_union"
        ? `${name} has the wrong type (${typeof payload[name]})`
        : issue.message;
      problems.push({ field: [name, ...issue.path].join("."), message });
    }
  }
  const p = fields as Fields;
  problems.push(...crossFieldProblems(p, payload));
  if (problems.length > 0 || p.ticker === undefined || p.action === undefined) {
    return { ok: false, problems };
  }
  return {
    ok: true,
    signal: {
      ticker: p.ticker,
      action: p.action,
      side: sideOf(p.action),
      quantity: p.quantity ?? p.contracts ?? null,
      orderType: p.order_type ?? "market",
      timeInForce: p.time_in_force ?? "day",
      price: p.price ?? null,
      limitPrice: p.limit_price ?? null,
      stopPrice: p.stop_price ?? null,
      takeProfit: p.take_profit ?? null,
      stopLoss: p.stop_loss ?? null,
      senderId: p.id ?? null,
      account: p.account ?? "paper",
      strategy: p.strategy ?? null,
      comment: p.comment ?? null,
      time: p.time ?? null,
    },
  };
}

/**
 * The dedup key: the sender's id when it gave one, else a SHA-256 of the normalized signal
 * (so `"quantity": "1"` and `"quantity": 1` are the same alert).
 */
export function dedupKey(signal: SignalInput): Promise<string> {
  if (signal.senderId) return Promise.resolve(`id:${signal.senderId}`);
  // node:crypto rather than WebCrypto: synchronous, ~2 µs instead of a worker-thread round trip.
  return Promise.resolve(
    `sha256:${createHash("sha256").update(canonicalJson(signal), "utf8").digest("hex")}`,
  );
}

/** JSON with object keys sorted at every depth, so equal values always serialize the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  if (Array.isArray(value)) return value.map(sortKeys);
  return Object.fromEntries(
    Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
  );
}

/** The body with the webhook key blanked out, as stored and journaled. */
export function redactKey(body: string, payload: Record<string, unknown> | null): string {
  if (!payload || typeof payload.key !== "string") return body;
  return JSON.stringify({ ...payload, key: "[REDACTED]" });
}
