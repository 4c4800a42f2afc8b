/**
 * The notifier inside the whole runtime: an event on the bus reaches the fake Telegram server,
 * and a 5xx is retried through the real durable queue (Deno KV) before a dead letter is kept.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createChannel, pendingDeadLetters } from "../db/notifications.ts";
import { configuredKeyring } from "../lib/crypto.ts";
import { uuidv7 } from "../lib/ids.ts";
import { start } from "../main.ts";
import { createPostgresDatabase } from "./_db.ts";
import { insertTrader } from "./_fixtures.ts";
import { startFakeTelegram } from "./fakes/telegram.ts";
import { watchedLogger } from "./_ws.ts";

Deno.test("runtime notifier retries a 5xx through the durable queue, then keeps a dead letter", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "trendedge-notify-" });
  const database = await createPostgresDatabase();
  await using telegram = startFakeTelegram();
  const watched = watchedLogger();
  const { log } = watched;
  const config = loadConfig({
    APP_ENV: "test",
    HOST: "127.0.0.1",
    PORT: "0",
    DATA_DIR: dataDir,
    DATABASE_URL: database.url,
    SHUTDOWN_TIMEOUT_MS: "5000",
    TELEGRAM_API_URL: telegram.url,
  });
  const runtime = await start(config, {
    log,
    notifier: { retryDelaysMs: [0, 0], telegramIntervalMs: 0 },
  });
  try {
    const trader = await insertTrader(runtime.db);
    await createChannel(runtime.db, {
      id: uuidv7(),
      userId: trader.userId,
      kind: "telegram",
      name: "phone",
      secret: await configuredKeyring(config).encrypt("42:AAH-runtime-test-token-0000"),
      chatId: "1001",
      events: null,
    });
    telegram.faults.push({ status: 502 }, { status: 503 }, { status: 500 });
    runtime.bus.publish({
      type: "trade.closed",
      userId: trader.userId,
      at: new Date().toISOString(),
      data: { symbol: "AAPL", realizedPnl: "12.5" },
    });
    await telegram.requests.waitForCount(() => true, 3, "three attempts", 15_000);
    await watched.waitFor(
      "the dead letter",
      (line) => line.message === "Notification failed for good; kept as a dead letter",
      { ms: 15_000 },
    );
    const letters = await pendingDeadLetters(runtime.db);
    assert.equal(letters.length, 1);
    assert.equal(letters[0]!.attempts, 3);
    assert.equal(letters[0]!.message, "🏁 Position closed: AAPL, realized P&L 12.5");
    assert.match(letters[0]!.lastError, /^Cannot send to Telegram: 500/);
    assert.ok(telegram.requests.items.every((r) => r.chatId === "1001"));
  } finally {
    await runtime.shutdown("test");
    await database.drop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
