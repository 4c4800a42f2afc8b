import assert from "node:assert/strict";
import type { Db } from "../db/client.ts";
import { createChannel, pendingDeadLetters } from "../db/notifications.ts";
import type { Delivery, EnqueueOptions, Queue, QueueHandler, QueueMessage } from "../db/queue.ts";
import { createUser } from "../db/users.ts";
import { createCipher } from "../lib/crypto.ts";
import { EventBus, type PipelineEvent } from "../lib/events.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestDb } from "../tests/_db.ts";
import { startFakeDiscord } from "../tests/fakes/discord.ts";
import { startFakeTelegram } from "../tests/fakes/telegram.ts";
import { watchedLogger } from "../tests/_ws.ts";
import { RecordingClock } from "./_testing.ts";
import { createActor } from "./actor.ts";
import {
  notifierBehavior,
  type NotifierCommand,
  type NotifierOptions,
  notifierQueueHandler,
  NOTIFY_RETRY_MESSAGE,
  type OperatorChannels,
  RETRY_DELAYS_MS,
} from "./notifier.ts";

const TOKEN_A = "111:AAH-token-of-trader-a";
const TOKEN_B = "222:AAH-token-of-trader-b";
const WEBHOOK = "https://discord.com/api/webhooks/998877/discord-secret-token";

/** A queue that records what is enqueued; the test delivers a message when it chooses. */
class RecordingQueue implements Queue {
  readonly enqueued: Array<{ message: QueueMessage; options: EnqueueOptions }> = [];
  #handlers = new Map<string, QueueHandler>();
  #waiters: Array<() => void> = [];
  handle(type: string, handler: QueueHandler): void {
    this.#handlers.set(type, handler);
  }
  start(): void {}
  enqueue(message: QueueMessage, options: EnqueueOptions = {}): Promise<string> {
    this.enqueued.push({ message, options });
    for (const wake of this.#waiters.splice(0)) wake();
    return Promise.resolve(crypto.randomUUID());
  }
  /** Resolves once `count` messages were enqueued. */
  async waitForCount(count: number): Promise<void> {
    while (this.enqueued.length < count) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
  /** Delivers the `index`th message enqueued to its handler. */
  deliver(index: number): Promise<void> {
    const { message } = this.enqueued[index]!;
    const delivery: Delivery = {
      id: "d",
      type: message.type,
      payload: message.payload,
      attempt: 1,
    };
    return this.#handlers.get(message.type)!(delivery);
  }
  deadLetters() {
    return Promise.resolve([]);
  }
  replay() {
    return Promise.resolve(false);
  }
  depth() {
    return Promise.resolve({ pending: 0, deadLetters: 0 });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function setup(options: NotifierOptions & { operator?: OperatorChannels } = {}) {
  const testDb = await createTestDb("pglite");
  const { db } = testDb;
  const telegram = startFakeTelegram();
  const discord = startFakeDiscord();
  const watched = watchedLogger();
  const clock = new RecordingClock();
  const bus = new EventBus(watched.log);
  const queue = new RecordingQueue();
  const cipher = await createCipher(crypto.getRandomValues(new Uint8Array(32)));
  const sentAt: number[] = [];
  // The database as the notifier sees it: `health.down` makes its ping fail.
  const health = { down: false };
  const flaky = new Proxy(db, {
    get(target, prop) {
      if (prop === "ping" && health.down) {
        return () => Promise.reject(new Error("connection refused"));
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const notifier = createActor<unknown, NotifierCommand>(
    "notifier",
    notifierBehavior({
      db: flaky,
      cipher,
      queue,
      bus,
      clock,
      operator: options.operator,
      send: {
        telegramApiUrl: telegram.url,
        discordApiUrl: discord.url,
        fetch: (input, init) => {
          sentAt.push(clock.now());
          return fetch(input, init);
        },
      },
    }, { monitorIntervalMs: 0, ...options }) as never,
    { log: watched.log, clock },
  );
  queue.handle(NOTIFY_RETRY_MESSAGE, notifierQueueHandler(notifier.ref));
  const running = notifier.run();
  const cheap = { iterations: 1_000 };
  const alice = await createUser(db, { email: "alice@example.com", password: null }, cheap);
  const bob = await createUser(db, { email: "bob@example.com", password: null }, cheap);
  return {
    db,
    telegram,
    discord,
    clock,
    bus,
    queue,
    cipher,
    sentAt,
    health,
    watched,
    notifier,
    alice,
    bob,
    async addTelegram(
      userId: string,
      token: string,
      chatId: string,
      events: string[] | null = null,
    ) {
      return await createChannel(db, {
        id: uuidv7(),
        userId,
        kind: "telegram",
        name: `tg ${chatId}`,
        secret: await cipher.encrypt(token),
        chatId,
        events,
      });
    },
    async [Symbol.asyncDispose]() {
      await running.stop(1_000);
      await telegram[Symbol.asyncDispose]();
      await discord[Symbol.asyncDispose]();
      await testDb[Symbol.asyncDispose]();
    },
  };
}

function fill(userId: string, symbol = "AAPL", extra: Partial<PipelineEvent> = {}): PipelineEvent {
  return {
    type: "trade.updated",
    userId,
    at: new Date().toISOString(),
    data: {
      symbol,
      side: "buy",
      quantity: "10",
      status: "filled",
      filledQuantity: "10",
      averageFillPrice: "187.5",
    },
    ...extra,
  };
}

async function waitForDeadLetters(
  db: Db,
  count: number,
  watched: ReturnType<typeof watchedLogger>,
) {
  for (let i = 0; i < count; i++) {
    await watched.waitFor(
      "dead letter",
      (l) => l.message === "Notification failed for good; kept as a dead letter",
      {
        from: 0,
      },
    );
  }
  return await pendingDeadLetters(db);
}

Deno.test("notifier sends a fill to that user's Telegram chat only, and skips events from other instances", async () => {
  await using t = await setup();
  await t.addTelegram(t.alice.id, TOKEN_A, "1001", ["trade.updated"]);
  await t.addTelegram(t.bob.id, TOKEN_B, "2002");
  t.bus.publish(fill(t.alice.id, "AAPL", { origin: "instance-b" }));
  t.bus.publish(fill(t.alice.id, "MSFT"));
  const got = await t.telegram.requests.waitFor(() => true, "a Telegram message");
  assert.equal(got.token, TOKEN_A);
  assert.equal(got.chatId, "1001");
  assert.equal(got.text, "✅ Filled: BUY 10 MSFT @ 187.5");
  // Alice's channel does not want closed trades; Bob's wants everything.
  t.bus.publish({
    ...fill(t.alice.id),
    type: "trade.closed",
    data: { symbol: "X", realizedPnl: "1" },
  });
  t.bus.publish(fill(t.bob.id, "TSLA"));
  const bob = await t.telegram.requests.waitFor((r) => r.chatId === "2002", "Bob's message");
  assert.equal(bob.text, "✅ Filled: BUY 10 TSLA @ 187.5");
  assert.deepEqual(t.telegram.requests.items.map((r) => r.chatId), ["1001", "2002"]);
  // Secrets never reach the log.
  const logged = JSON.stringify(t.watched.lines);
  assert.ok(!logged.includes(TOKEN_A) && !logged.includes(TOKEN_B));
});

Deno.test("notifier paces one Telegram chat to one message per second on its clock", async () => {
  await using t = await setup();
  await t.addTelegram(t.alice.id, TOKEN_A, "1001");
  await t.addTelegram(t.bob.id, TOKEN_B, "2002");
  const start = t.clock.now();
  for (const symbol of ["A", "B", "C"]) t.bus.publish(fill(t.alice.id, symbol));
  t.bus.publish(fill(t.bob.id, "Z"));
  // The first message to each chat goes at once; Alice's next ones wait for the clock.
  await t.telegram.requests.waitForCount(() => true, 2, "one message per chat");
  for (const expected of [2, 3]) {
    assert.equal(await t.clock.sleeps.next(), 1_000);
    await t.clock.advance(1_000);
    await t.telegram.requests.waitForCount(() => true, expected + 1, `message ${expected}`);
  }
  assert.deepEqual(
    t.telegram.requests.items.filter((r) => r.chatId === "1001").map((r) => r.text.split(" ")[4]),
    ["A", "B", "C"],
  );
  assert.deepEqual(t.sentAt.map((ms) => ms - start), [0, 0, 1_000, 2_000]);
});

Deno.test("notifier honours Telegram's 429 retry_after, then sends", async () => {
  await using t = await setup();
  await t.addTelegram(t.alice.id, TOKEN_A, "1001");
  const start = t.clock.now();
  t.telegram.faults.push({ status: 429, retryAfter: 5 });
  t.bus.publish(fill(t.alice.id));
  await t.telegram.requests.waitFor((r) => r.status === 429, "the 429");
  assert.equal(await t.clock.sleeps.next(), 5_000);
  await t.clock.advance(5_000);
  await t.telegram.requests.waitFor((r) => r.status === 200, "the resend");
  assert.deepEqual(t.sentAt.map((ms) => ms - start), [0, 5_000]);
  assert.equal(t.queue.enqueued.length, 0);
});

Deno.test("notifier retries a 5xx through the queue after 10 s, 60 s and 300 s, then keeps a dead letter", async () => {
  await using t = await setup();
  const channel = await t.addTelegram(t.alice.id, TOKEN_A, "1001");
  t.telegram.faults.push({ status: 502 }, { status: 503 }, { status: 500 }, { status: 502 });
  t.bus.publish(fill(t.alice.id));
  for (let i = 0; i < RETRY_DELAYS_MS.length; i++) {
    await t.queue.waitForCount(i + 1);
    const { message, options } = t.queue.enqueued[i]!;
    assert.equal(message.type, NOTIFY_RETRY_MESSAGE);
    assert.equal(options.delayMs, RETRY_DELAYS_MS[i]);
    assert.equal((message.payload as { attempt: number }).attempt, i + 2);
    assert.ok(!JSON.stringify(message.payload).includes(TOKEN_A), "no secret in the queue");
    // Past the pacing interval, as the queue's delay would be.
    await t.clock.advance(RETRY_DELAYS_MS[i]!);
    await t.queue.deliver(i);
  }
  assert.deepEqual(RETRY_DELAYS_MS, [10_000, 60_000, 300_000]);
  const [letter] = await waitForDeadLetters(t.db, 1, t.watched);
  assert.equal(letter!.channelId, channel.id);
  assert.equal(letter!.userId, t.alice.id);
  assert.equal(letter!.attempts, 4);
  assert.equal(letter!.message, "✅ Filled: BUY 10 AAPL @ 187.5");
  assert.match(letter!.lastError, /^Cannot send to Telegram: 502/);
  assert.equal(t.telegram.requests.items.length, 4);
  assert.equal(t.queue.enqueued.length, 3);
});

Deno.test("notifier keeps a dead letter at once for chat not found and an unknown Discord webhook", async () => {
  await using t = await setup();
  await t.addTelegram(t.alice.id, TOKEN_A, "1001");
  await createChannel(t.db, {
    id: uuidv7(),
    userId: t.bob.id,
    kind: "discord",
    name: "discord",
    secret: await t.cipher.encrypt(WEBHOOK),
    chatId: null,
    events: null,
  });
  t.telegram.faults.push({ status: 400 });
  t.discord.faults.push({ status: 404 });
  t.bus.publish(fill(t.alice.id));
  t.bus.publish(fill(t.bob.id));
  await t.watched.waitFor(
    "two dead letters",
    () =>
      t.watched.lines.filter((l) =>
        l.message === "Notification failed for good; kept as a dead letter"
      ).length === 2,
  );
  const letters = await pendingDeadLetters(t.db);
  assert.deepEqual(letters.map((l) => l.lastError).sort(), [
    "Cannot send to Discord: 404 Unknown Webhook",
    "Cannot send to Telegram: 400 Bad Request: chat not found",
  ]);
  assert.ok(letters.every((l) => l.attempts === 1));
  assert.equal(t.queue.enqueued.length, 0);
  const logged = JSON.stringify(t.watched.lines);
  assert.ok(!logged.includes(TOKEN_A) && !logged.includes("discord-secret-token"));
});

Deno.test("notifier tells the operator channel about breaker changes and answers a test message", async () => {
  await using t = await setup({
    operator: {
      telegram: { token: "999:operator", chatId: "-100" },
      discord: { webhookUrl: WEBHOOK },
    },
  });
  const channel = await t.addTelegram(t.alice.id, TOKEN_A, "1001");
  t.bus.publish({
    type: "breaker.opened",
    userId: t.alice.id,
    accountId: "acc",
    at: new Date().toISOString(),
    data: { alias: "alpaca-live" },
  });
  const op = await t.telegram.requests.waitFor((r) => r.chatId === "-100", "the operator alert");
  assert.match(op.text, /^\[operator\] user .*Circuit breaker OPEN for account "alpaca-live"/);
  const fromDiscord = await t.discord.requests.waitFor(() => true, "the operator Discord alert");
  assert.equal(fromDiscord.webhookId, "998877");
  await t.telegram.requests.waitFor((r) => r.chatId === "1001", "the trader's alert");

  const bobs = await t.addTelegram(t.bob.id, TOKEN_B, "2002", []);
  const outcome = await t.notifier.ref.ask(
    (reply) => ({ type: "test", userId: t.bob.id, channelId: bobs.id, reply }),
    { timeoutMs: 5_000 },
  );
  assert.deepEqual(outcome, { ok: true });
  const test = await t.telegram.requests.waitFor((r) => r.chatId === "2002", "the test message");
  assert.equal(test.text, '✅ trendedge test message for "tg 2002"');
  const other = await t.notifier.ref.ask(
    (reply) => ({ type: "test", userId: t.bob.id, channelId: channel.id, reply }),
    { timeoutMs: 5_000 },
  );
  assert.equal(other, undefined, "another user's channel is unknown");
});

Deno.test("notifier tells the operator when the database stops answering and when it is back", async () => {
  await using t = await setup({
    operator: { telegram: { token: "999:operator", chatId: "-100" } },
    monitorIntervalMs: 60_000,
  });
  assert.equal(await t.clock.sleeps.next(), 60_000);
  t.health.down = true;
  await t.clock.advance(60_000);
  const down = await t.telegram.requests.waitFor(() => true, "the outage alert");
  assert.equal(down.chatId, "-100");
  assert.match(down.text, /The database is unreachable: connection refused/);
  // Still down at the next check: no second alert. Then back up.
  assert.equal(await t.clock.sleeps.next(), 60_000);
  await t.clock.advance(60_000);
  assert.equal(await t.clock.sleeps.next(), 60_000);
  t.health.down = false;
  await t.clock.advance(60_000);
  const up = await t.telegram.requests.waitForCount(() => true, 2, "the recovery alert");
  assert.match(up[1]!.text, /The database answers again/);
});
