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
import { flush, RecordingClock } from "./_testing.ts";
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
  // Every statement the notifier runs, to count its lookups.
  const statements: string[] = [];
  const flaky = new Proxy(db, {
    get(target, prop) {
      if (prop === "ping" && health.down) {
        return () => Promise.reject(new Error("connection refused"));
      }
      if (prop === "query") {
        return (text: string, params?: readonly unknown[]) => {
          statements.push(text);
          return target.query(text, params);
        };
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
    }, { monitorIntervalMs: 0, eventBatchMs: 0, ...options }) as never,
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
    statements,
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

Deno.test("notifier looks up the channels of a burst of events once, and each event reaches the channels that want it", async () => {
  await using t = await setup();
  await t.addTelegram(t.alice.id, TOKEN_A, "1001", ["trade.updated"]);
  await t.addTelegram(t.bob.id, TOKEN_B, "2002", ["trade.closed"]);
  await t.addTelegram(t.bob.id, TOKEN_B, "2003");
  await createChannel(t.db, {
    id: uuidv7(),
    userId: t.bob.id,
    kind: "telegram",
    name: "off",
    secret: await t.cipher.encrypt(TOKEN_B),
    chatId: "2004",
    events: null,
    enabled: false,
  });
  const closed = (userId: string): PipelineEvent => ({
    ...fill(userId),
    type: "trade.closed",
    data: { symbol: "X", realizedPnl: "1" },
  });
  const lookups = () => t.statements.filter((q) => q.includes("notification_channels")).length;
  // One burst, as a fill publishes it: published together, before the notifier runs.
  t.bus.publish(fill(t.alice.id, "MSFT"));
  t.bus.publish(closed(t.alice.id)); // Alice's only channel does not want it
  t.bus.publish({ ...fill(t.bob.id), type: "signal.received" }); // never notified
  t.bus.publish(closed(t.bob.id));
  await t.telegram.requests.waitForCount(() => true, 3, "three messages");
  await flush();
  assert.deepEqual(
    t.telegram.requests.items.map((r) => `${r.chatId} ${r.text}`).sort(),
    [
      "1001 ✅ Filled: BUY 10 MSFT @ 187.5",
      "2002 🏁 Position closed: X, realized P&L 1",
      "2003 🏁 Position closed: X, realized P&L 1",
    ],
  );
  assert.equal(lookups(), 1);
  // A later event is looked up again: a channel added meanwhile is seen.
  await t.addTelegram(t.alice.id, TOKEN_A, "1005");
  t.bus.publish(closed(t.alice.id));
  await t.telegram.requests.waitFor((r) => r.chatId === "1005", "the new channel's message");
  assert.equal(lookups(), 2);
});

Deno.test("notifier with eventBatchMs looks up the events of that time together, on its clock", async () => {
  await using t = await setup({ eventBatchMs: 50 });
  await t.addTelegram(t.alice.id, TOKEN_A, "1001");
  await t.addTelegram(t.bob.id, TOKEN_B, "2002");
  const lookups = () => t.statements.filter((q) => q.includes("notification_channels")).length;
  t.bus.publish(fill(t.alice.id, "MSFT"));
  assert.equal(await t.clock.sleeps.next(), 50);
  await flush();
  t.bus.publish(fill(t.bob.id, "TSLA")); // within the 50 ms: same lookup
  await flush();
  assert.equal(lookups(), 0);
  assert.equal(t.telegram.requests.items.length, 0);
  await t.clock.advance(50);
  await t.telegram.requests.waitForCount(() => true, 2, "both messages");
  assert.equal(lookups(), 1);
  assert.deepEqual(t.telegram.requests.items.map((r) => r.chatId).sort(), ["1001", "2002"]);
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

/** Inserts what a day of trading leaves behind, by hand. */
async function seedDay(db: Db, userId: string, alias: string) {
  const accountId = uuidv7();
  await db.query(
    `INSERT INTO broker_accounts (id, user_id, alias, broker) VALUES ($1, $2, $3, 'paper')`,
    [accountId, userId, alias],
  );
  return {
    accountId,
    async signal(status: string, at: string, account: string | null = accountId) {
      await db.query(
        `INSERT INTO signals (id, user_id, account_id, source, dedup_key, raw_body, status,
           received_at) VALUES ($1::uuid, $2, $3, 'tradingview', $1::uuid::text, '{}', $4, $5)`,
        [uuidv7(), userId, account, status, at],
      );
    },
    /** A filled order with one fill per `[realizedPnl, filledAt]`. */
    async order(fills: Array<[string, string]>) {
      const orderId = uuidv7();
      await db.query(
        `INSERT INTO orders (id, user_id, account_id, client_order_id, symbol, side, quantity,
           order_type, time_in_force, status) VALUES ($1::uuid, $2, $3, $1::uuid::text, 'AAPL', 'buy', 10,
           'market', 'day', 'filled')`,
        [orderId, userId, accountId],
      );
      for (const [pnl, at] of fills) {
        await db.query(
          `INSERT INTO fills (id, order_id, user_id, account_id, broker_fill_id, symbol, side,
             quantity, price, realized_pnl, filled_at)
           VALUES ($1::uuid, $2, $3, $4, $1::uuid::text, 'AAPL', 'buy', 5, 100, $5, $6)`,
          [uuidv7(), orderId, userId, accountId, pnl, at],
        );
      }
    },
    async position(symbol: string, quantity: string) {
      await db.query(
        `INSERT INTO positions (account_id, symbol, user_id, quantity) VALUES ($1, $2, $3, $4)`,
        [accountId, symbol, userId, quantity],
      );
    },
  };
}

Deno.test("notifier sends each user with a summary channel their day once, even when told twice by two notifiers", async () => {
  await using t = await setup({ telegramIntervalMs: 0 });
  const carol = await createUser(t.db, { email: "carol@example.com", password: null }, {
    iterations: 1_000,
  });
  await t.addTelegram(t.alice.id, TOKEN_A, "1001", ["summary.daily"]);
  await t.addTelegram(t.bob.id, TOKEN_B, "2002");
  // Alice's day: 3 signals to her account (1 rejected), 1 refused before routing, 2 filled
  // orders (a third filled the day before), 2 open positions and a flat one.
  const alice = await seedDay(t.db, t.alice.id, "alpha");
  await alice.signal("filled", "2026-11-21T09:00:00Z");
  await alice.signal("filled", "2026-11-21T10:00:00Z");
  await alice.signal("rejected", "2026-11-21T11:00:00Z");
  await alice.signal("rejected", "2026-11-21T12:00:00Z", null);
  await alice.signal("rejected", "2026-11-20T12:00:00Z");
  await alice.order([["12.50", "2026-11-21T09:00:01Z"], ["0.001", "2026-11-21T09:00:02Z"]]);
  await alice.order([["-2.25", "2026-11-21T10:00:01Z"]]);
  await alice.order([["100", "2026-11-20T10:00:01Z"]]);
  await alice.position("AAPL", "10");
  await alice.position("MSFT", "-5");
  await alice.position("TSLA", "0");
  const bob = await seedDay(t.db, t.bob.id, "bravo");
  await bob.signal("filled", "2026-11-21T15:00:00Z");
  await bob.order([["5", "2026-11-21T15:00:01Z"]]);
  // Carol traded but has no channel.
  const carolDay = await seedDay(t.db, carol.id, "charlie");
  await carolDay.signal("filled", "2026-11-21T15:00:00Z");
  await carolDay.order([["7", "2026-11-21T15:00:01Z"]]);

  const other = createActor<unknown, NotifierCommand>(
    "notifier-b",
    notifierBehavior({
      db: t.db,
      cipher: t.cipher,
      queue: t.queue,
      bus: t.bus,
      clock: t.clock,
      instanceId: "instance-b",
      send: { telegramApiUrl: t.telegram.url },
    }, { monitorIntervalMs: 0, eventBatchMs: 0 }) as never,
    { log: t.watched.log, clock: t.clock },
  );
  const running = other.run();
  try {
    const day = new Date("2026-11-21T22:00:00Z");
    const summarize = (ref: typeof other.ref) =>
      ref.ask<number>((reply) => ({ type: "daily_summary", day, reply }), { timeoutMs: 5_000 });
    const queued = await Promise.all([
      summarize(t.notifier.ref),
      summarize(other.ref),
      summarize(t.notifier.ref),
    ]);
    // One notifier claimed the day and queued both users' messages; the others queued none.
    assert.deepEqual(queued.toSorted(), [0, 0, 2]);
    await t.telegram.requests.waitFor((r) => r.chatId === "1001", "Alice's summary");
    await t.telegram.requests.waitFor((r) => r.chatId === "2002", "Bob's summary");
    const texts = Object.fromEntries(t.telegram.requests.items.map((r) => [r.chatId, r.text]));
    assert.equal(t.telegram.requests.items.length, 2);
    assert.deepEqual(texts, {
      "1001": "📊 Daily summary 2026-11-21 (UTC)\n" +
        "• alpha: 3 signals (1 rejected), 2 orders filled, realized P&L 10.251, 2 open positions\n" +
        "• no account: 1 signals (1 rejected)",
      "2002": "📊 Daily summary 2026-11-21 (UTC)\n" +
        "• bravo: 1 signals (0 rejected), 1 orders filled, realized P&L 5, 0 open positions",
    });
  } finally {
    await running.stop(1_000);
  }
});

Deno.test("notifier alerts the operator once per error spike, counted per minute on its clock", async () => {
  await using t = await setup({
    telegramIntervalMs: 0,
    errorSpikeThreshold: 20,
    operator: { telegram: { token: TOKEN_A, chatId: "9000" } },
  });
  const errors = async (count: number) => {
    for (let i = 0; i < count; i++) await t.notifier.ref.tell({ type: "log_error" });
    // A test message to no channel answers once the notifier took every error before it, so the
    // clock moves on only after they were counted.
    await t.notifier.ref.ask<unknown>(
      (reply) => ({ type: "test", userId: t.alice.id, channelId: uuidv7(), reply }),
      { timeoutMs: 5_000 },
    );
  };
  await errors(25);
  const first = await t.telegram.requests.waitFor(() => true, "the spike alert");
  assert.equal(first.chatId, "9000");
  assert.equal(first.text, "🚨 20 errors in the last minute");
  // More errors in the same spike, then a whole minute above the threshold: still one spike.
  await errors(10);
  await t.clock.advance(60_000);
  await errors(25);
  // A quiet minute ends it; the next spike alerts again.
  await t.clock.advance(60_000);
  await errors(5);
  await t.clock.advance(60_000);
  await errors(22);
  // A breaker alert told after all of it goes out through the same lane, in mailbox order: any
  // stray spike alert would reach the chat before it.
  t.bus.publish({
    type: "breaker.opened",
    userId: t.alice.id,
    at: new Date(t.clock.now()).toISOString(),
    data: { alias: "alpha" },
  });
  await t.telegram.requests.waitFor((r) => r.text.includes("Circuit breaker"), "the barrier");
  assert.deepEqual(t.telegram.requests.items.map((r) => r.text.slice(0, 32)), [
    "🚨 20 errors in the last minute",
    "🚨 20 errors in the last minute",
    `[operator] user ${t.alice.id}: 🚨 Circuit breaker OPEN`.slice(0, 32),
  ]);
});
