import assert from "node:assert/strict";
import { startFakeDiscord } from "../tests/fakes/discord.ts";
import { startFakeTelegram } from "../tests/fakes/telegram.ts";
import {
  MAX_TEXT_LENGTH,
  renderEvent,
  sendNotification,
  validateDiscordWebhookUrl,
} from "./notify.ts";

const at = "2026-01-05T14:30:00.000Z";
const TOKEN = "123456:AAH-secret-bot-token";
const WEBHOOK = "https://discord.com/api/webhooks/112233445566/s3cr3t-Token_x";

Deno.test("renderEvent writes a template per notified event type", () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      "trade.created",
      { symbol: "AAPL", side: "buy", quantity: "10", broker: "paper" },
      /BUY 10 AAPL/,
    ],
    [
      "trade.updated",
      {
        symbol: "AAPL",
        side: "buy",
        quantity: "10",
        status: "filled",
        filledQuantity: "10",
        averageFillPrice: "187.5",
      },
      /^✅ Filled: BUY 10 AAPL @ 187\.5$/,
    ],
    [
      "trade.updated",
      { symbol: "MNQ", side: "sell", quantity: "2", status: "canceled" },
      /canceled/,
    ],
    ["trade.closed", { symbol: "AAPL", realizedPnl: "-12.40" }, /realized P&L -12\.40/],
    ["signal.rejected", { reason: "max position exceeded", status: "rejected" }, /max position/],
    ["breaker.opened", { alias: "alpaca-paper" }, /OPEN for account "alpaca-paper"/],
    ["breaker.closed", { alias: "alpaca-paper" }, /closed for account "alpaca-paper"/],
    [
      "position.mismatch",
      { alias: "alpaca-paper", symbol: "AAPL", recorded: "0", atBroker: "50" },
      /^⚠️ Position differs at the broker for account "alpaca-paper": AAPL is 50 there and 0 in trendedge\. /,
    ],
    [
      "trendline.alert",
      { symbol: "BTCUSD", timeframe: "4h", kind: "resistance", alertType: "break", price: "97000" },
      /^📈 Trendline break: BTCUSD 4h resistance at 97000$/,
    ],
    ["webhook_key.expiring", { name: "TradingView", expiresAt: "2026-01-12" }, /TradingView/],
  ];
  for (const [type, data, expected] of cases) {
    const text = renderEvent({ type: type as never, data, at });
    assert.ok(text && expected.test(text), `${type}: ${text}`);
  }
  assert.equal(renderEvent({ type: "signal.received", data: {}, at }), undefined);
  const long = renderEvent({ type: "signal.rejected", data: { reason: "x".repeat(5000) }, at })!;
  assert.equal(long.length, MAX_TEXT_LENGTH);
});

Deno.test("validateDiscordWebhookUrl takes only Discord's webhook URLs", () => {
  assert.equal(validateDiscordWebhookUrl(WEBHOOK), WEBHOOK);
  assert.equal(
    validateDiscordWebhookUrl("https://discordapp.com/api/webhooks/1/abc"),
    "https://discord.com/api/webhooks/1/abc",
  );
  for (
    const bad of [
      "http://discord.com/api/webhooks/1/abc",
      "https://evil.example.com/api/webhooks/1/abc",
      "https://discord.com.evil.example.com/api/webhooks/1/abc",
      "https://discord.com:8443/api/webhooks/1/abc",
      "https://user:pw@discord.com/api/webhooks/1/abc",
      "https://discord.com/api/webhooks/1/abc?x=1",
      "https://discord.com/api/webhooks/notanid/abc",
      "https://discord.com/api/users/1/abc",
      "https://discord.com/api/webhooks/1/abc/../../../x",
      "http://127.0.0.1:8080/api/webhooks/1/abc",
      "not a url",
    ]
  ) {
    assert.throws(() => validateDiscordWebhookUrl(bad), TypeError, bad);
  }
  assert.throws(
    () => validateDiscordWebhookUrl("https://evil.example.com/api/webhooks/1/s3cr3t"),
    (e: Error) => !e.message.includes("s3cr3t"),
  );
});

Deno.test("sendNotification reads Telegram's real answers: ok, 429 retry_after, 400, 5xx", async () => {
  await using telegram = startFakeTelegram();
  const target = { kind: "telegram" as const, token: TOKEN, chatId: "42" };
  const opts = { telegramApiUrl: telegram.url };
  assert.deepEqual(await sendNotification(target, "hello", opts), { ok: true });
  const [first] = telegram.requests.items;
  assert.deepEqual({ token: first!.token, chatId: first!.chatId, text: first!.text }, {
    token: TOKEN,
    chatId: "42",
    text: "hello",
  });

  telegram.faults.push({ status: 429, retryAfter: 5 }, { status: 400 }, { status: 502 }, {
    status: 401,
  });
  const limited = await sendNotification(target, "x", opts);
  assert.equal(limited.ok, false);
  assert.ok(!limited.ok && limited.retryable && limited.retryAfterMs === 5_000);
  const notFound = await sendNotification(target, "x", opts);
  assert.ok(!notFound.ok && !notFound.retryable);
  assert.match(!notFound.ok ? notFound.error : "", /400 Bad Request: chat not found/);
  const bad = await sendNotification(target, "x", opts);
  assert.ok(!bad.ok && bad.retryable && bad.retryAfterMs === undefined);
  const unauthorized = await sendNotification(target, "x", opts);
  assert.ok(!unauthorized.ok && !unauthorized.retryable);
  for (const outcome of [limited, notFound, bad, unauthorized]) {
    assert.ok(!outcome.ok && !outcome.error.includes(TOKEN));
  }
});

Deno.test("sendNotification posts to Discord through the configured base and reads its 429 and 404", async () => {
  await using discord = startFakeDiscord();
  const target = { kind: "discord" as const, webhookUrl: WEBHOOK };
  const opts = { discordApiUrl: discord.url };
  assert.deepEqual(await sendNotification(target, "fill", opts), { ok: true });
  const [first] = discord.requests.items;
  assert.equal(first!.webhookId, "112233445566");
  assert.equal(first!.token, "s3cr3t-Token_x");
  assert.equal(first!.content, "fill");

  discord.faults.push({ status: 429, retryAfter: 0.5 }, { status: 404 }, { status: 503 });
  const limited = await sendNotification(target, "x", opts);
  assert.ok(!limited.ok && limited.retryable && limited.retryAfterMs === 500);
  const unknown = await sendNotification(target, "x", opts);
  assert.ok(!unknown.ok && !unknown.retryable);
  assert.match(!unknown.ok ? unknown.error : "", /404 Unknown Webhook/);
  const down = await sendNotification(target, "x", opts);
  assert.ok(!down.ok && down.retryable);
});

Deno.test("sendNotification reports a network error without the URL or token", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const outcome = await sendNotification(
    { kind: "telegram", token: TOKEN, chatId: "1" },
    "x",
    { telegramApiUrl: `http://127.0.0.1:${port}` },
  );
  assert.deepEqual(outcome, {
    ok: false,
    retryable: true,
    error: "Cannot reach Telegram: network error",
  });
});
