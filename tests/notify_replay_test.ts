/**
 * `deno task notify:replay` as an operator runs it, against a PostgreSQL test database and the
 * fake Telegram and Discord servers: dead letters are resent and marked, failures stay.
 */
import assert from "node:assert/strict";
import { createChannel, insertDeadLetter, pendingDeadLetters } from "../db/notifications.ts";
import { createKeyring } from "../lib/crypto.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestDb } from "./_db.ts";
import { insertTrader } from "./_fixtures.ts";
import { hexBytes } from "./_pipeline.ts";
import { runTask } from "./_process.ts";
import { startFakeDiscord } from "./fakes/discord.ts";
import { startFakeTelegram } from "./fakes/telegram.ts";

const KEY = "44".repeat(32);
const BOT_TOKEN = "777:AAH-replay-test-secret-token";

Deno.test("notify:replay resends dead letters, marks them replayed, and keeps the ones that fail", async () => {
  await using t = await createTestDb("postgres");
  await using telegram = startFakeTelegram();
  await using discord = startFakeDiscord();
  const { db } = t;
  const keyring = createKeyring({ current: { key: hexBytes(KEY), version: 1 } });
  const ann = await insertTrader(db);
  const tg = await createChannel(db, {
    id: uuidv7(),
    userId: ann.userId,
    kind: "telegram",
    name: "phone",
    secret: await keyring.encrypt(BOT_TOKEN),
    chatId: "1001",
    events: null,
  });
  const letter = (n: number, fields: Partial<Parameters<typeof insertDeadLetter>[1]>) => ({
    id: uuidv7(Date.now() + n),
    channelId: tg.id,
    operator: null,
    userId: ann.userId,
    eventType: "trade.updated",
    message: `message ${n}`,
    attempts: 4,
    lastError: "Cannot send to Telegram: 502",
    ...fields,
  });
  const first = letter(1, {});
  const operator = letter(2, {
    channelId: null,
    userId: null,
    operator: "discord",
    message: "operator alert",
  });
  await insertDeadLetter(db, first);
  await insertDeadLetter(db, operator);
  const env = {
    APP_ENV: "test",
    DATABASE_URL: t.url!,
    ENCRYPTION_KEY: KEY,
    TELEGRAM_API_URL: telegram.url,
    DISCORD_API_URL: discord.url,
    OPERATOR_DISCORD_WEBHOOK_URL: "https://discord.com/api/webhooks/55/operator-replay-token",
  };

  const usage = await runTask(env, "notify:replay");
  assert.equal(usage.code, 64, usage.stderr);

  // One of them fails this time: it stays for a later replay.
  discord.faults.push({ status: 503 });
  const partly = await runTask(env, "notify:replay", "--all");
  assert.equal(partly.code, 1, partly.stdout + partly.stderr);
  assert.match(partly.stdout, /Resent 1, failed 1, skipped 0\./);
  assert.match(partly.stderr, /Cannot send to Discord: 503/);
  assert.deepEqual((await pendingDeadLetters(db)).map((l) => l.id), [operator.id]);
  const [sent] = telegram.requests.items;
  assert.deepEqual([sent!.token, sent!.chatId, sent!.text], [BOT_TOKEN, "1001", "message 1"]);

  const one = await runTask(env, "notify:replay", "--id", operator.id);
  assert.equal(one.code, 0, one.stdout + one.stderr);
  assert.match(one.stdout, /Resent 1, failed 0, skipped 0\./);
  assert.equal(discord.requests.items.at(-1)!.content, "operator alert");
  assert.equal(discord.requests.items.at(-1)!.webhookId, "55");
  assert.deepEqual(await pendingDeadLetters(db), []);
  const replayed = await db.query<{ n: unknown }>(
    "SELECT count(*) AS n FROM notification_dead_letters WHERE replayed_at IS NOT NULL",
  );
  assert.equal(Number(replayed[0]!.n), 2);

  const again = await runTask(env, "notify:replay", "--id", operator.id);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /no dead letter waits with that id/);
  for (const out of [usage, partly, one, again]) {
    assert.ok(!(out.stdout + out.stderr).includes(BOT_TOKEN));
  }
});
