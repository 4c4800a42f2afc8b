import assert from "node:assert/strict";
import { ALERT_PLACEHOLDERS, alertMessage, keyPlaceholder } from "./alert_message.ts";
import { parsePayload, validateSignal } from "./signal.ts";

const KEY = "whk_" + "A".repeat(43);

/** Fills the placeholders as TradingView does when the alert fires. */
function fire(message: string, values: Record<keyof typeof ALERT_PLACEHOLDERS, string>): string {
  let text = message;
  for (const [field, placeholder] of Object.entries(ALERT_PLACEHOLDERS)) {
    text = text.replace(placeholder, values[field as keyof typeof ALERT_PLACEHOLDERS]);
  }
  return text;
}

Deno.test("alertMessage is a TradingView template of the signal payload that validates once filled", () => {
  const message = alertMessage(KEY, { account: "alpaca-live" });
  const fired = fire(message, {
    ticker: "NASDAQ:AAPL",
    action: "sell",
    quantity: "0.5",
    price: "190.12",
    time: "2026-01-05T14:30:00Z",
  });
  const result = validateSignal(parsePayload(fired));
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.signal.ticker, "NASDAQ:AAPL");
  assert.equal(result.signal.action, "sell");
  assert.equal(result.signal.quantity, "0.5");
  assert.equal(result.signal.price, "190.12");
  assert.equal(result.signal.account, "alpaca-live");
  assert.deepEqual(result.signal.time, new Date("2026-01-05T14:30:00Z"));
});

Deno.test("alertMessage defaults to the paper account and names only its placeholders as unfilled", () => {
  const payload = parsePayload(alertMessage(KEY));
  assert.equal(payload.account, "paper");
  const result = validateSignal(payload);
  assert.equal(result.ok, false);
  const fields = (result as { problems: { field?: string }[] }).problems.map((p) => p.field);
  assert.deepEqual(fields.sort(), ["action", "price", "quantity", "ticker", "time"]);
});

Deno.test("keyPlaceholder shows the prefix and cannot pass for a key", () => {
  const placeholder = keyPlaceholder("whk_AbCd1234");
  assert.equal(placeholder, "<your key starting whk_AbCd1234…>");
  assert.equal(JSON.parse(alertMessage(placeholder)).key, placeholder);
  assert.ok(!/^whk_[A-Za-z0-9_-]{43}$/.test(placeholder));
});
