/**
 * The ready-to-paste TradingView alert message for a webhook key: a JSON object of our signal
 * payload (lib/signal.ts) whose values are TradingView placeholders, filled in by TradingView
 * when the alert fires.
 */

/** The TradingView placeholders of the alert message, by payload field. */
export const ALERT_PLACEHOLDERS = {
  ticker: "{{ticker}}",
  action: "{{strategy.order.action}}",
  quantity: "{{strategy.order.contracts}}",
  price: "{{close}}",
  time: "{{timenow}}",
} as const;

/**
 * What stands in for a key that cannot be shown any more (only its hash is stored): the trader
 * replaces it with the key they copied when it was created.
 */
export function keyPlaceholder(prefix: string): string {
  return `<your key starting ${prefix}…>`;
}

/**
 * The alert message for `key` (the key in clear, or {@linkcode keyPlaceholder}) and the broker
 * account `account`, pretty-printed for TradingView's message box.
 *
 * @example
 * alertMessage(keyPlaceholder("whk_AbCd1234"), { account: "paper" });
 */
export function alertMessage(key: string, options: { account?: string } = {}): string {
  return JSON.stringify(
    { key, ...ALERT_PLACEHOLDERS, account: options.account ?? "paper" },
    null,
    2,
  );
}
