import assert from "node:assert/strict";
import {
  checkRisk,
  DEFAULT_MAX_SIGNAL_AGE_SECONDS,
  type RiskContext,
  type RiskLimits,
  RiskLimitsSchema,
  type RiskVerdict,
} from "./risk.ts";

// Tuesday 2026-01-06 15:00 in New York.
const NOW = Date.parse("2026-01-06T20:00:00Z");

const CTX: RiskContext = {
  now: NOW,
  receivedAt: NOW - 1_000,
  globalKillSwitch: false,
  accountKillSwitch: false,
  symbol: "MNQH6",
  root: "MNQ",
  side: "buy",
  quantity: 1,
  positionQuantity: 0,
  dailyPnl: 0,
};

function limits(json: unknown = {}): RiskLimits {
  return RiskLimitsSchema.parse(json);
}

function ruleOf(verdict: RiskVerdict): string {
  return verdict.ok ? "ok" : verdict.rule;
}

function check(json: unknown, ctx: Partial<RiskContext> = {}): RiskVerdict {
  return checkRisk(limits(json), { ...CTX, ...ctx });
}

Deno.test("checkRisk allows an order when no limit applies", () => {
  assert.deepEqual(check({}), { ok: true });
});

Deno.test("checkRisk kill switches block everything, closing orders too", () => {
  assert.deepEqual(check({}, { globalKillSwitch: true }), {
    ok: false,
    rule: "global_kill_switch",
    reason: "Trading is halted for all accounts by the global kill switch",
  });
  assert.deepEqual(check({}, { accountKillSwitch: true, side: "sell", positionQuantity: 1 }), {
    ok: false,
    rule: "account_kill_switch",
    reason: "Trading is halted for this account by its kill switch",
  });
});

Deno.test("checkRisk rejects a signal older than max_signal_age_seconds, equal is allowed", () => {
  assert.equal(DEFAULT_MAX_SIGNAL_AGE_SECONDS, 60);
  assert.deepEqual(limits({}).max_signal_age_seconds, 60);
  assert.equal(ruleOf(check({}, { receivedAt: NOW - 60_000 })), "ok");
  assert.deepEqual(check({}, { receivedAt: NOW - 75_000 }), {
    ok: false,
    rule: "max_signal_age",
    reason: "Signal is 75 s old; the maximum age is 60 s",
  });
  assert.deepEqual(check({}, { receivedAt: NOW - 60_001 }), {
    ok: false,
    rule: "max_signal_age",
    reason: "Signal is 60.1 s old; the maximum age is 60 s",
  });
  assert.equal(ruleOf(check({ max_signal_age_seconds: 300 }, { receivedAt: NOW - 75_000 })), "ok");
  assert.equal(ruleOf(check({}, { receivedAt: NOW + 5_000 })), "ok", "clock skew is not age");
});

Deno.test("checkRisk matches allowed_symbols against symbol or root, any case", () => {
  assert.equal(ruleOf(check({ allowed_symbols: ["mnq"] })), "ok");
  assert.equal(ruleOf(check({ allowed_symbols: ["MNQH6"] })), "ok");
  assert.deepEqual(check({ allowed_symbols: ["AAPL", "ES"] }), {
    ok: false,
    rule: "allowed_symbols",
    reason: 'Symbol "MNQH6" is not among the allowed symbols (AAPL, ES)',
  });
});

Deno.test("checkRisk rejects orders outside the trading session", () => {
  const trading_session = {
    timezone: "America/New_York",
    days: [1, 2, 3, 4, 5],
    start: "09:30",
    end: "16:00",
  };
  assert.equal(ruleOf(check({ trading_session })), "ok");
  const after = Date.parse("2026-01-06T21:00:00Z");
  assert.deepEqual(check({ trading_session }, { now: after, receivedAt: after }), {
    ok: false,
    rule: "trading_session",
    reason: "Outside the trading session (Mon–Fri 09:30–16:00 America/New_York)",
  });
});

Deno.test("checkRisk rejects a quantity above max_order_quantity, equal is allowed", () => {
  assert.equal(ruleOf(check({ max_order_quantity: 2 }, { quantity: 2 })), "ok");
  assert.deepEqual(check({ max_order_quantity: 2 }, { quantity: 5 }), {
    ok: false,
    rule: "max_order_quantity",
    reason: "Quantity 5 exceeds the maximum order quantity of 2",
  });
  assert.equal(
    ruleOf(check({ max_order_quantity: 2 }, { quantity: 5, side: "sell", positionQuantity: 5 })),
    "max_order_quantity",
    "the order size limit holds for closing orders too",
  );
  assert.equal(
    (check({ max_order_quantity: 0.5 }, { quantity: 0.75 }) as { reason: string }).reason,
    "Quantity 0.75 exceeds the maximum order quantity of 0.5",
  );
});

Deno.test("checkRisk max_position rejects only increases of absolute exposure beyond the limit", () => {
  const max = { max_position: 4 };
  assert.equal(ruleOf(check(max, { positionQuantity: 3, quantity: 1 })), "ok", "to 4 = limit");
  assert.deepEqual(check(max, { positionQuantity: 3, quantity: 2 }), {
    ok: false,
    rule: "max_position",
    reason: "Position would become 5, beyond the maximum position of 4",
  });
  assert.equal(ruleOf(check(max, { positionQuantity: -4, side: "sell" })), "max_position");
  // Reducing and closing are always allowed, even from above the limit.
  assert.equal(ruleOf(check(max, { positionQuantity: 10, side: "sell", quantity: 1 })), "ok");
  assert.equal(ruleOf(check(max, { positionQuantity: -10, side: "buy", quantity: 10 })), "ok");
  // Flips: +3 to -3 does not grow; +3 to -5 does, beyond 4; +3 to -4 grows to the limit.
  assert.equal(ruleOf(check(max, { positionQuantity: 3, side: "sell", quantity: 6 })), "ok");
  assert.deepEqual(check(max, { positionQuantity: 3, side: "sell", quantity: 8 }), {
    ok: false,
    rule: "max_position",
    reason: "Position would become -5, beyond the maximum position of 4",
  });
  assert.equal(ruleOf(check(max, { positionQuantity: 3, side: "sell", quantity: 7 })), "ok");
});

Deno.test("checkRisk max_daily_loss blocks new exposure at the limit but allows closing", () => {
  const max = { max_daily_loss: 1000 };
  assert.equal(ruleOf(check(max, { dailyPnl: -999.99 })), "ok");
  assert.deepEqual(check(max, { dailyPnl: -1250 }), {
    ok: false,
    rule: "max_daily_loss",
    reason:
      "Daily loss of 1,250.00 reached the limit of 1,000.00; only orders that reduce a position are allowed",
  });
  assert.equal(ruleOf(check(max, { dailyPnl: -1000 })), "max_daily_loss", "equal blocks");
  assert.equal(ruleOf(check(max, { dailyPnl: -5000, positionQuantity: 2, side: "sell" })), "ok");
  assert.equal(
    ruleOf(check(max, { dailyPnl: -5000, positionQuantity: 2, side: "sell", quantity: 3 })),
    "ok",
    "a flip to a smaller size does not grow exposure",
  );
  assert.equal(
    ruleOf(check(max, { dailyPnl: -5000, positionQuantity: 2, side: "sell", quantity: 5 })),
    "max_daily_loss",
  );
  assert.equal(ruleOf(check(max, { dailyPnl: 2000 })), "ok");
});

Deno.test("checkRisk checks rules in order and reports the first failure", () => {
  const all = {
    max_order_quantity: 1,
    max_position: 1,
    max_daily_loss: 100,
    allowed_symbols: ["AAPL"],
    trading_session: { timezone: "UTC", days: [6], start: "00:00", end: "01:00" },
  };
  const bad: Partial<RiskContext> = {
    globalKillSwitch: true,
    accountKillSwitch: true,
    receivedAt: NOW - 120_000,
    quantity: 5,
    positionQuantity: 3,
    dailyPnl: -500,
  };
  const order = [
    "global_kill_switch",
    "account_kill_switch",
    "max_signal_age",
    "allowed_symbols",
    "trading_session",
    "max_order_quantity",
    "max_position",
    "max_daily_loss",
  ];
  let json: Record<string, unknown> = all;
  const ctx = { ...bad };
  for (const rule of order) {
    assert.equal(ruleOf(checkRisk(limits(json), { ...CTX, ...ctx })), rule);
    // Clear this rule's failure and expect the next one.
    if (rule === "global_kill_switch") ctx.globalKillSwitch = false;
    if (rule === "account_kill_switch") ctx.accountKillSwitch = false;
    if (rule === "max_signal_age") ctx.receivedAt = NOW;
    if (rule === "allowed_symbols") json = { ...json, allowed_symbols: ["MNQ"] };
    if (rule === "trading_session") json = { ...json, trading_session: undefined };
    if (rule === "max_order_quantity") json = { ...json, max_order_quantity: 10 };
    if (rule === "max_position") json = { ...json, max_position: 10 };
    if (rule === "max_daily_loss") json = { ...json, max_daily_loss: 1000 };
  }
  assert.equal(ruleOf(checkRisk(limits(json), { ...CTX, ...ctx })), "ok");
});

Deno.test("checkRisk throws on a context that is not numbers", () => {
  assert.throws(() => check({}, { quantity: 0 }), RangeError);
  assert.throws(() => check({}, { quantity: Number.NaN }), RangeError);
  assert.throws(() => check({}, { dailyPnl: Number.NaN }), {
    message: 'Cannot check risk: dailyPnl "NaN" is not a finite number',
  });
});

Deno.test("RiskLimitsSchema parses the stored JSON with its default", () => {
  assert.deepEqual(
    limits({
      max_order_quantity: 2,
      max_position: 4.5,
      max_daily_loss: 1000,
      allowed_symbols: ["AAPL", "MNQ"],
      trading_session: { timezone: "America/New_York", days: [1], start: "09:30", end: "16:00" },
    }),
    {
      max_order_quantity: 2,
      max_position: 4.5,
      max_daily_loss: 1000,
      allowed_symbols: ["AAPL", "MNQ"],
      trading_session: { timezone: "America/New_York", days: [1], start: "09:30", end: "16:00" },
      max_signal_age_seconds: 60,
    },
  );
});

Deno.test("RiskLimitsSchema rejects bad JSON with clear messages", () => {
  const messages = (json: unknown) =>
    RiskLimitsSchema.safeParse(json).error?.issues.map((i) => i.message) ?? [];
  assert.deepEqual(messages({ max_order_quantity: -1 }), [
    '"max_order_quantity" must be a positive number',
  ]);
  assert.deepEqual(messages({ max_position: 0 }), ['"max_position" must be a positive number']);
  assert.deepEqual(messages({ max_daily_loss: "1000" }), [
    '"max_daily_loss" must be a positive number',
  ]);
  assert.deepEqual(messages({ max_signal_age_seconds: 1.5 }), [
    '"max_signal_age_seconds" must be a positive whole number',
  ]);
  assert.deepEqual(messages({ max_signal_age_seconds: -5 }), [
    '"max_signal_age_seconds" must be a positive whole number',
  ]);
  assert.deepEqual(messages({ allowed_symbols: "AAPL" }), [
    '"allowed_symbols" must be an array of symbols',
  ]);
  assert.deepEqual(messages({ allowed_symbols: [] }), [
    '"allowed_symbols" must list at least one symbol; omit it to allow all',
  ]);
  assert.deepEqual(messages({ allowed_symbols: [" "] }), [
    '"allowed_symbols" must not hold an empty symbol',
  ]);
  assert.deepEqual(messages({ max_qty: 5, kill: true }), ['Unknown risk limit "max_qty", "kill"']);
  assert.deepEqual(messages([]), ["Risk limits must be a JSON object"]);
  assert.deepEqual(messages(null), ["Risk limits must be a JSON object"]);
  assert.deepEqual(
    messages({
      trading_session: { timezone: "Nowhere/Land", days: [1], start: "09:30", end: "16:00" },
    }),
    ['Unknown time zone "Nowhere/Land"'],
  );
});
