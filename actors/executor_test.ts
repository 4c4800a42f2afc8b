/**
 * The executor end to end in-process: a real actor over a real test database, a real event bus,
 * a real durable queue (Deno KV on a temp file) whose `executor.retry` handler tells the executor
 * again, and either the paper broker or the real Alpaca adapter against the fake Alpaca.
 */
import assert from "node:assert/strict";
import { createAlpacaBroker } from "../brokers/alpaca.ts";
import type { Broker, BrokerOrder, OrderRequest } from "../brokers/broker.ts";
import { PaperBroker, PaperSettingsSchema } from "../brokers/paper.ts";
import { setAccountKillSwitch, setGlobalKillSwitch } from "../db/accounts.ts";
import { memoryBreakerStore } from "../db/breaker_store.ts";
import type { Db, DbEngine, Queryable } from "../db/client.ts";
import { createOrder } from "../db/executions.ts";
import type { Delivery, Queue } from "../db/queue.ts";
import { createKvQueue } from "../db/queue_kv.ts";
import { acceptSignal, getSignal, type SignalRow } from "../db/signals.ts";
import type { CircuitBreakerSnapshot } from "../lib/circuit_breaker.ts";
import { type Clock, FakeClock, systemClock } from "../lib/clock.ts";
import { EventBus, type PipelineEvent } from "../lib/events.ts";
import { uuidv7 } from "../lib/ids.ts";
import { type LogFields, memoryLogger } from "../lib/log.ts";
import { validateSignal } from "../lib/signal.ts";
import { createTestDb, ENGINES, type TestDb } from "../tests/_db.ts";
import { insertTrader, marketBuyOrder, type TraderFixture } from "../tests/_fixtures.ts";
import { type FakeAlpaca, startFakeAlpaca } from "../tests/fakes/alpaca.ts";
import { type Actor, createActor } from "./actor.ts";
import {
  executorBehavior,
  type ExecutorCommand,
  type ExecutorDeps,
  type ExecutorStatus,
  flipRefusal,
  RETRY_MESSAGE,
  splitFlip,
} from "./executor.ts";
import type { RunningChild } from "./supervisor.ts";

const ALPACA_KEY_ID = "test-key-id";
const ALPACA_SECRET = "test-secret-key";
const TERMINAL = new Set(["filled", "rejected", "failed", "canceled"]);

interface HarnessOptions {
  engine?: DbEngine;
  clock?: Clock;
  risk?: Record<string, unknown>;
  /** Trade through the Alpaca adapter against this fake instead of the paper broker. */
  alpaca?: FakeAlpaca;
  /** Builds the paper broker (to inject faults); the plain PaperBroker by default. */
  paperBroker?: (clock: Clock) => PaperBroker;
  /** Wraps the broker the executor gets, e.g. to record calls. */
  wrapBroker?: (broker: Broker) => Broker;
  retryBackoffMs?: number[];
  breaker?: ExecutorDeps["breaker"];
  random?: () => number;
  /** Retries the queue delivers wait for this before reaching the executor. */
  retryGate?: Promise<unknown>;
  /** Start the executor at once (default true); false leaves it to `start()`. */
  run?: boolean;
  /** Paper settings of the account. */
  paper?: Record<string, unknown>;
  /** Wraps the database the executor gets (the harness itself reads the plain one). */
  wrapDb?: (db: Db) => Db;
  /** How often a remote broker's open orders are polled (default: a minute, i.e. not in a test). */
  pollIntervalMs?: number;
  /** How often a remote broker's positions are compared (default: a minute, i.e. not in a test). */
  comparePositionsMs?: number;
}

/** One executor with everything around it; `await using` tears it all down. */
interface Harness extends AsyncDisposable {
  db: Db;
  clock: Clock;
  trader: TraderFixture;
  accountId: string;
  alias: string;
  events: PipelineEvent[];
  lines: LogFields[];
  /** Retries the queue delivered, in order. */
  retries: Delivery[];
  /** Every breaker snapshot the executor saved, in order. */
  breakerSaves: CircuitBreakerSnapshot[];
  queue: Queue;
  actor: Actor<ExecutorCommand>;
  start(): Promise<void>;
  /** Stops the executor cleanly; `start()` runs it again (a restart: state rebuilt from the db). */
  stop(): Promise<void>;
  /** Accepts a signal the way the webhook does; returns its id. */
  accept(payload: Record<string, unknown>): Promise<string>;
  execute(signalId: string, options?: { recovering?: boolean }): Promise<void>;
  /** Waits until the signal is in a terminal state and returns it. */
  finished(signalId: string, timeoutMs?: number): Promise<SignalRow>;
  /** Accepts, executes and waits for the end of a signal and of the message that ran it. */
  run(payload: Record<string, unknown>): Promise<SignalRow>;
  /** Asks the executor its status; as the mailbox is FIFO, everything told before is done. */
  status(): Promise<ExecutorStatus>;
  journal(signalId: string): Promise<Array<{ event: string; data: Record<string, unknown> }>>;
  orders(signalId: string): Promise<OrderDbRow[]>;
}

interface OrderDbRow {
  id: string;
  leg: string;
  parentId: string | null;
  clientOrderId: string;
  brokerOrderId: string | null;
  side: string;
  quantity: string;
  orderType: string;
  status: string;
  brokerStatus: string | null;
  filledQuantity: string;
  averageFillPrice: string | null;
  limitPrice: string | null;
  stopPrice: string | null;
  reason: string | null;
}

/** Polls `probe` until it returns something truthy; fails with `what` after `timeoutMs`. */
async function until<T>(
  probe: () => T | Promise<T>,
  what: string,
  timeoutMs = 5_000,
): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (performance.now() > deadline) assert.fail(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const clock = options.clock ?? systemClock;
  const { log, lines } = memoryLogger();
  const cleanup: Array<() => PromiseLike<void> | void> = [];
  let testDb: TestDb | undefined;
  try {
    testDb = await createTestDb(options.engine ?? "postgres");
    const db = testDb.db;
    cleanup.unshift(() => testDb![Symbol.asyncDispose]());
    const trader = await insertTrader(db, { risk: options.risk ?? {}, paper: options.paper });
    let accountId = trader.accountId;
    let alias = "paper";
    if (options.alpaca) {
      accountId = uuidv7();
      alias = "alpaca";
      await db.query(
        `INSERT INTO broker_accounts (id, user_id, alias, broker, risk)
         VALUES ($1, $2, 'alpaca', 'alpaca', $3::text::jsonb)`,
        [accountId, trader.userId, JSON.stringify(options.risk ?? {})],
      );
    }

    const dir = await Deno.makeTempDir({ prefix: "trendedge-executor-" });
    cleanup.unshift(() => Deno.remove(dir, { recursive: true }));
    const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
    cleanup.unshift(() => kv.close());
    const queue = createKvQueue(kv, { log: log.child("queue") });
    cleanup.unshift(() => queue.close(2_000));

    const events: PipelineEvent[] = [];
    const bus = new EventBus(log.child("events"));
    bus.subscribe((event) => events.push(event));

    const store = memoryBreakerStore();
    const breakerSaves: CircuitBreakerSnapshot[] = [];
    const alpaca = options.alpaca;
    const deps: ExecutorDeps = {
      db: options.wrapDb?.(db) ?? db,
      bus,
      queue,
      clock,
      breakers: {
        load: (id) => store.load(id),
        save: (id, snapshot) => {
          breakerSaves.push(structuredClone(snapshot));
          return store.save(id, snapshot);
        },
      },
      createBroker: (account) => {
        let broker: Broker;
        if (alpaca) {
          broker = createAlpacaBroker({
            keyId: ALPACA_KEY_ID,
            secretKey: ALPACA_SECRET,
            paper: true,
            baseUrl: alpaca.url,
            timeoutMs: 500,
            log: log.child("alpaca"),
          });
        } else {
          broker = options.paperBroker?.(clock) ?? new PaperBroker({
            settings: PaperSettingsSchema.parse(account.paper ?? {}),
            clock,
          });
        }
        return Promise.resolve(options.wrapBroker?.(broker) ?? broker);
      },
      retryBackoffMs: options.retryBackoffMs ?? [100],
      pollIntervalMs: options.pollIntervalMs ?? 60_000,
      comparePositionsMs: options.comparePositionsMs ?? 60_000,
      breaker: options.breaker,
      random: options.random,
    };
    const actor = createActor(`executor:${accountId}`, executorBehavior(accountId, deps), {
      log: log.child("executor"),
      clock,
    });

    const retries: Delivery[] = [];
    queue.handle(RETRY_MESSAGE, async (delivery) => {
      await options.retryGate;
      retries.push(delivery);
      const { signalId, attempt } = delivery.payload as { signalId: string; attempt: number };
      await actor.ref.tell({ type: "execute", signalId, recovering: true, attempt });
    });
    queue.start();

    let running: RunningChild | undefined;
    const status = () =>
      actor.ref.ask<ExecutorStatus>((reply) => ({ type: "status", reply }), {
        timeoutMs: 10_000,
      });
    const h: Harness = {
      db,
      clock,
      trader,
      accountId,
      alias,
      events,
      lines,
      retries,
      breakerSaves,
      queue,
      actor,
      async start() {
        running = actor.run();
        await status();
      },
      async stop() {
        const stopping = running;
        running = undefined;
        await stopping?.stop(5_000);
      },
      async accept(payload) {
        const validation = validateSignal({ account: alias, ...payload });
        if (!validation.ok) assert.fail(JSON.stringify(validation.problems));
        const at = clock.now();
        const id = uuidv7(at);
        const result = await acceptSignal(
          db,
          {
            id,
            userId: trader.userId,
            keyId: trader.keyId,
            accountId,
            source: "tradingview",
            rawBody: JSON.stringify(payload),
            receivedAt: new Date(at),
          },
          validation.signal,
          {
            dedupKey: `test:${id}`,
            windowMs: 60_000,
            symbol: validation.signal.ticker,
          },
        );
        assert.equal(result.duplicate, false);
        return result.signalId;
      },
      execute(signalId, { recovering = false } = {}) {
        return actor.ref.tell({ type: "execute", signalId, recovering });
      },
      finished(signalId, timeoutMs = 5_000) {
        return until(
          async () => {
            const row = await getSignal(db, signalId);
            return row && TERMINAL.has(row.status) ? row : null;
          },
          `signal ${signalId} to finish`,
          timeoutMs,
        );
      },
      async run(payload) {
        const id = await h.accept(payload);
        await h.execute(id);
        const signal = await h.finished(id);
        await status(); // the rest of that message (bracket legs) is done too
        return signal;
      },
      status,
      journal(signalId) {
        return db.query(
          "SELECT event, data FROM journal WHERE signal_id = $1 ORDER BY id",
          [signalId],
        );
      },
      async orders(signalId) {
        return [
          ...await db.query<OrderDbRow & Record<string, unknown>>(
            `SELECT id, leg, parent_id AS "parentId", client_order_id AS "clientOrderId",
                  broker_order_id AS "brokerOrderId", side, quantity::text AS quantity,
                  order_type AS "orderType", status, broker_status AS "brokerStatus",
                  filled_quantity::text AS "filledQuantity",
                  average_fill_price::text AS "averageFillPrice", limit_price::text AS "limitPrice",
                  stop_price::text AS "stopPrice", reason
           FROM orders WHERE signal_id = $1 ORDER BY created_at, id`,
            [signalId],
          ),
        ];
      },
      async [Symbol.asyncDispose]() {
        let crash: unknown;
        if (running) {
          const done = running.done.catch((error) => {
            crash = error ?? "unknown";
          });
          await running.stop(5_000);
          await done;
        }
        for (const step of cleanup) await step();
        if (crash !== undefined) {
          throw new Error(`The executor crashed: ${String(crash)}`, { cause: crash });
        }
      },
    };
    if (options.run ?? true) await h.start();
    return h;
  } catch (error) {
    for (const step of cleanup) await Promise.resolve(step()).catch(() => {});
    throw error;
  }
}

function num(value: unknown): number {
  return Number(value);
}

/** The reason recorded on a signal (why it was refused, failed or canceled). */
async function reasonOf(h: Harness, signalId: string): Promise<string | null> {
  const [row] = await h.db.query<{ reason: string | null }>(
    "SELECT reason FROM signals WHERE id = $1",
    [signalId],
  );
  return row?.reason ?? null;
}

function eventsOf(h: Harness, type: string, signalId?: string): PipelineEvent[] {
  return h.events.filter((e) => e.type === type && (!signalId || e.signalId === signalId));
}

function orderRequests(fake: FakeAlpaca): string[] {
  return fake.requests
    .filter((r) => r.path === "/v2/orders" || r.path === "/v2/orders:by_client_order_id")
    .map((r) => `${r.method} ${r.path}`);
}

function postCount(fake: FakeAlpaca): number {
  return fake.requests.filter((r) => r.method === "POST" && r.path === "/v2/orders").length;
}

// 1. The paper round trip, on both engines.

for (const engine of ENGINES) {
  Deno.test(`${engine}: executor fills a paper market buy at the signal price, then closes it with realized P&L`, async () => {
    await using h = await startHarness({ engine });

    const buy = await h.run({ ticker: "AAPL", action: "buy", quantity: 2, price: 190 });
    assert.equal(buy.status, "filled");
    const [order, ...more] = await h.orders(buy.id);
    assert.equal(more.length, 0);
    assert.equal(order?.status, "filled");
    assert.equal(order?.clientOrderId, buy.id);
    assert.equal(order?.side, "buy");
    assert.equal(num(order?.filledQuantity), 2);
    assert.equal(num(order?.averageFillPrice), 190);
    assert.ok(order?.brokerOrderId);

    const fills = await h.db.query<{ quantity: string; price: string }>(
      "SELECT quantity::text AS quantity, price::text AS price FROM fills WHERE order_id = $1",
      [order!.id],
    );
    assert.deepEqual(fills.map((f) => [num(f.quantity), num(f.price)]), [[2, 190]]);
    const position = async () =>
      (await h.db.query<{ quantity: string; average_price: string; realized_pnl: string }>(
        `SELECT quantity::text AS quantity, average_price::text AS average_price,
                realized_pnl::text AS realized_pnl
         FROM positions WHERE account_id = $1 AND symbol = 'AAPL'`,
        [h.accountId],
      ))[0];
    assert.equal(num((await position())?.quantity), 2);
    assert.equal(num((await position())?.average_price), 190);
    const trades = () =>
      h.db.query<Record<string, string | null>>(
        `SELECT status, direction, quantity::text AS quantity, entry_price::text AS entry_price,
                exit_price::text AS exit_price, realized_pnl::text AS realized_pnl,
                entry_signal_id::text AS entry_signal_id, exit_signal_id::text AS exit_signal_id
         FROM trades WHERE account_id = $1`,
        [h.accountId],
      );
    const [open] = await trades();
    assert.equal(open?.status, "open");
    assert.equal(open?.direction, "long");
    assert.equal(num(open?.quantity), 2);
    assert.equal(num(open?.entry_price), 190);
    assert.equal(open?.entry_signal_id, buy.id);

    const journal = (await h.journal(buy.id)).map((j) => j.event);
    assert.deepEqual(
      journal.filter((e) => ["order.created", "order.filled", "signal.filled"].includes(e)),
      ["order.created", "order.filled", "signal.filled"],
    );
    assert.equal(eventsOf(h, "trade.created", buy.id).length, 1);
    assert.equal(eventsOf(h, "trade.updated", buy.id).length, 1);
    assert.equal(eventsOf(h, "trade.updated", buy.id)[0]?.data.status, "filled");
    assert.equal(eventsOf(h, "trade.closed").length, 0);

    const close = await h.run({ ticker: "AAPL", action: "close", price: 195 });
    assert.equal(close.status, "filled");
    const [exit] = await h.orders(close.id);
    assert.equal(exit?.side, "sell");
    assert.equal(num(exit?.filledQuantity), 2);
    assert.equal(num(exit?.averageFillPrice), 195);
    assert.equal(num((await position())?.quantity), 0);
    assert.equal(num((await position())?.realized_pnl), 10);
    const [closed, ...others] = await trades();
    assert.equal(others.length, 0);
    assert.equal(closed?.status, "closed");
    assert.equal(num(closed?.exit_price), 195);
    assert.equal(num(closed?.realized_pnl), 10);
    assert.equal(closed?.exit_signal_id, close.id);
    const closedEvents = eventsOf(h, "trade.closed", close.id);
    assert.equal(closedEvents.length, 1);
    assert.equal(num(closedEvents[0]?.data.realizedPnl), 10);
    assert.ok((await h.journal(close.id)).some((j) => j.event === "signal.filled"));
  });
}

// 2. Every risk rule rejects, journaled and published, and places nothing.

interface RiskCase {
  name: string;
  risk?: Record<string, unknown>;
  clock?: FakeClock;
  /** Runs before the signal under test is accepted (orders placed here are fine). */
  before?: (h: Harness) => Promise<void>;
  /** Runs after it is accepted, before it is executed. */
  between?: (h: Harness) => Promise<void>;
  signal: Record<string, unknown>;
  reason: string;
}

const RISK_CASES: RiskCase[] = [
  {
    name: "the global kill switch",
    before: (h) => setGlobalKillSwitch(h.db, true, h.trader.userId),
    signal: { ticker: "AAPL", action: "buy", quantity: 1, price: 190 },
    reason: "Trading is halted for all accounts by the global kill switch",
  },
  {
    name: "the account kill switch",
    before: async (h) => {
      assert.ok(await setAccountKillSwitch(h.db, h.trader.userId, h.alias, true));
    },
    signal: { ticker: "AAPL", action: "buy", quantity: 1, price: 190 },
    reason: "Trading is halted for this account by its kill switch",
  },
  {
    name: "the maximum signal age",
    risk: { max_signal_age_seconds: 30 },
    clock: new FakeClock(),
    between: async (h) => await (h.clock as FakeClock).advance(31_000),
    signal: { ticker: "AAPL", action: "buy", quantity: 1, price: 190 },
    reason: "Signal is 31 s old; the maximum age is 30 s",
  },
  {
    name: "allowed_symbols",
    risk: { allowed_symbols: ["MSFT", "NVDA"] },
    signal: { ticker: "AAPL", action: "buy", quantity: 1, price: 190 },
    reason: 'Symbol "AAPL" is not among the allowed symbols (MSFT, NVDA)',
  },
  {
    name: "max_order_quantity",
    risk: { max_order_quantity: 10 },
    signal: { ticker: "AAPL", action: "buy", quantity: 11, price: 190 },
    reason: "Quantity 11 exceeds the maximum order quantity of 10",
  },
  {
    name: "max_position",
    risk: { max_position: 3 },
    before: async (h) => {
      const first = await h.run({ ticker: "AAPL", action: "buy", quantity: 2, price: 190 });
      assert.equal(first.status, "filled");
    },
    signal: { ticker: "AAPL", action: "buy", quantity: 2, price: 190 },
    reason: "Position would become 4, beyond the maximum position of 3",
  },
  {
    name: "max_daily_loss",
    risk: { max_daily_loss: 5 },
    before: async (h) => {
      // Buy high, sell low: 10 lost today.
      assert.equal(
        (await h.run({ ticker: "AAPL", action: "buy", quantity: 1, price: 100 })).status,
        "filled",
      );
      assert.equal((await h.run({ ticker: "AAPL", action: "close", price: 90 })).status, "filled");
    },
    signal: { ticker: "AAPL", action: "buy", quantity: 1, price: 90 },
    reason:
      "Daily loss of 10.00 reached the limit of 5.00; only orders that reduce a position are allowed",
  },
  {
    name: "a close without a position",
    signal: { ticker: "AAPL", action: "close", price: 190 },
    reason: "Cannot close AAPL: there is no open position",
  },
];

for (const c of RISK_CASES) {
  Deno.test(`executor rejects a signal by ${c.name}, journaled and published, placing nothing`, async () => {
    await using h = await startHarness({ risk: c.risk, clock: c.clock });
    await c.before?.(h);
    const ordersBefore = await h.db.query("SELECT id FROM orders");
    const id = await h.accept(c.signal);
    await c.between?.(h);
    await h.execute(id);
    const signal = await h.finished(id);

    assert.equal(signal.status, "rejected");
    assert.equal(await reasonOf(h, id), c.reason);
    const rejected = (await h.journal(id)).filter((j) => j.event === "signal.rejected");
    assert.deepEqual(rejected.map((j) => j.data.reason), [c.reason]);
    const published = eventsOf(h, "signal.rejected", id);
    assert.deepEqual(published.map((e) => e.data.reason), [c.reason]);
    assert.deepEqual(await h.orders(id), []);
    assert.equal((await h.db.query("SELECT id FROM orders")).length, ordersBefore.length);
    assert.equal(eventsOf(h, "trade.created", id).length, 0);
  });
}

// 3. A paper bracket: two legs rest, one cancels the other.

Deno.test("executor rests a paper bracket's two legs; a price past take profit fills it and cancels the stop (OCO)", async () => {
  const clock = new FakeClock();
  await using h = await startHarness({ clock });
  const entry = await h.run({
    ticker: "AAPL",
    action: "buy",
    quantity: 3,
    price: 100,
    take_profit: 110,
    stop_loss: 95,
  });
  assert.equal(entry.status, "filled");
  const rows = await h.orders(entry.id);
  const byLeg = (rows: OrderDbRow[], leg: string) => rows.find((r) => r.leg === leg);
  const parent = byLeg(rows, "entry");
  assert.equal(parent?.status, "filled");
  assert.equal(num(parent?.averageFillPrice), 100);
  const tp = byLeg(rows, "take_profit");
  const sl = byLeg(rows, "stop_loss");
  assert.equal(rows.length, 3);
  for (const leg of [tp, sl]) {
    assert.equal(leg?.status, "pending");
    assert.equal(leg?.parentId, parent?.id);
    assert.equal(leg?.side, "sell");
    assert.equal(num(leg?.quantity), 3);
  }
  assert.equal(tp?.orderType, "limit");
  assert.equal(num(tp?.limitPrice), 110);
  assert.equal(sl?.orderType, "stop");
  assert.equal(num(sl?.stopPrice), 95);
  assert.equal((await h.status()).openOrders, 2);

  // Below take profit and above the stop: nothing moves.
  await h.actor.ref.tell({ type: "price", symbol: "AAPL", price: "105", at: clock.now() });
  await h.status();
  const still = await h.orders(entry.id);
  assert.deepEqual(
    ["entry", "take_profit", "stop_loss"].map((leg) => byLeg(still, leg)?.status),
    ["filled", "pending", "pending"],
  );

  await clock.advance(60_000);
  await h.actor.ref.tell({ type: "price", symbol: "AAPL", price: "112", at: clock.now() });
  assert.equal((await h.status()).openOrders, 0);
  const after = await h.orders(entry.id);
  const tpAfter = byLeg(after, "take_profit");
  const slAfter = byLeg(after, "stop_loss");
  assert.equal(tpAfter?.status, "filled");
  assert.equal(num(tpAfter?.averageFillPrice), 112); // a limit sell fills at the better price
  assert.equal(slAfter?.status, "canceled");
  assert.match(slAfter?.reason ?? "", /other leg of the bracket filled/);

  const [position] = await h.db.query<{ quantity: string; realized_pnl: string }>(
    "SELECT quantity::text AS quantity, realized_pnl::text AS realized_pnl FROM positions WHERE account_id = $1",
    [h.accountId],
  );
  assert.equal(num(position?.quantity), 0);
  assert.equal(num(position?.realized_pnl), 36);
  const [trade] = await h.db.query<Record<string, string>>(
    "SELECT status, exit_price::text AS exit_price, realized_pnl::text AS realized_pnl, stop_loss::text AS stop_loss FROM trades WHERE account_id = $1",
    [h.accountId],
  );
  assert.equal(trade?.status, "closed");
  assert.equal(num(trade?.exit_price), 112);
  assert.equal(num(trade?.realized_pnl), 36);
  assert.equal(num(trade?.stop_loss), 95);
  const closed = eventsOf(h, "trade.closed");
  assert.equal(closed.length, 1);
  assert.equal(closed[0]?.data.leg, "take_profit");
  assert.equal(num(closed[0]?.data.realizedPnl), 36);
  const fills = await h.db.query("SELECT id FROM fills WHERE account_id = $1", [h.accountId]);
  assert.equal(fills.length, 2);
});

// 4. Alpaca, exactly once.

Deno.test("executor records an Alpaca order whose POST answer was lost by looking it up, never posting twice", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" } });
  await using h = await startHarness({ alpaca: fake });
  fake.faults.add({ method: "POST", path: "/v2/orders", kind: "drop_after_record" });

  const signal = await h.run({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
  assert.equal(signal.status, "filled");
  assert.deepEqual(orderRequests(fake), [
    "POST /v2/orders",
    "GET /v2/orders:by_client_order_id",
  ]);
  const lookup = fake.requests.find((r) => r.path === "/v2/orders:by_client_order_id");
  assert.equal(new URLSearchParams(lookup?.query).get("client_order_id"), signal.id);
  assert.equal(fake.orders.size, 1);
  const atBroker = fake.orders.get(signal.id);
  assert.ok(atBroker);
  const rows = await h.db.query<{ id: string }>("SELECT id FROM orders");
  assert.equal(rows.length, 1);
  const [order] = await h.orders(signal.id);
  assert.equal(order?.status, "filled");
  assert.equal(order?.brokerOrderId, atBroker.id);
  assert.equal(num(order?.averageFillPrice), 190);
  assert.equal(h.retries.length, 0);
  assert.ok(!(await h.journal(signal.id)).some((j) => j.event === "order.failed"));
  assert.deepEqual(h.breakerSaves.at(-1)?.failures, []);
});

Deno.test("executor retries an Alpaca 500 through the queue: a failure for the breaker, then look-up and one POST", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" } });
  await using h = await startHarness({ alpaca: fake, retryBackoffMs: [100] });
  fake.faults.add({ method: "POST", path: "/v2/orders", kind: "status", status: 500 });

  const signal = await h.run({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
  assert.equal(signal.status, "filled");
  assert.deepEqual(orderRequests(fake), [
    "POST /v2/orders", // 500
    "GET /v2/orders:by_client_order_id", // 404: the POST did not go through
    "GET /v2/orders:by_client_order_id", // the retry looks first
    "POST /v2/orders", // then posts once
  ]);
  assert.equal(h.retries.length, 1);
  assert.deepEqual(h.retries[0]?.payload, {
    signalId: signal.id,
    accountId: h.accountId,
    attempt: 2,
  });
  const failed = (await h.journal(signal.id)).filter((j) => j.event === "order.failed");
  assert.equal(failed.length, 1);
  assert.equal(failed[0]?.data.attempt, 1);
  assert.equal(failed[0]?.data.kind, "unavailable");
  assert.equal(failed[0]?.data.status, 500);
  // The breaker counted one failure, then the success cleared it.
  assert.equal(h.breakerSaves[0]?.failures.length, 1);
  assert.equal(h.breakerSaves[0]?.openUntil, null);
  assert.deepEqual(h.breakerSaves.at(-1), { failures: [], openUntil: null });
  const rows = await h.orders(signal.id);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.status, "filled");
  assert.equal(rows[0]?.brokerOrderId, fake.orders.get(signal.id)?.id);
  assert.equal(fake.orders.size, 1);
});

Deno.test("executor never posts blindly while the broker cannot say whether it has the order, and posts once when it can", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" } });
  await using h = await startHarness({ alpaca: fake, retryBackoffMs: [100] });
  // An outage: the POST, its look-up and the next attempt's look-up all fail.
  fake.faults.add({ kind: "status", status: 503, times: 3 });

  const signal = await h.run({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
  assert.equal(signal.status, "filled");
  assert.deepEqual(orderRequests(fake), [
    "POST /v2/orders", // 503: ambiguous
    "GET /v2/orders:by_client_order_id", // 503: unknown is not absent
    "GET /v2/orders:by_client_order_id", // attempt 2: 503 again, no POST
    "GET /v2/orders:by_client_order_id", // attempt 3: 404
    "POST /v2/orders", // posted once more, now that it is known to be absent
  ]);
  assert.deepEqual(h.retries.map((r) => (r.payload as { attempt: number }).attempt), [2, 3]);
  assert.equal(h.lines.filter((l) => l.message === "Signal execution failed").length, 0);
  const failed = (await h.journal(signal.id)).filter((j) => j.event === "order.failed");
  assert.deepEqual(failed.map((j) => j.data.attempt), [1, 2]);
  assert.equal(h.breakerSaves.filter((s) => s.failures.length > 0).length, 2);
  const rows = await h.orders(signal.id);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.status, "filled");
  assert.equal(fake.orders.size, 1);
});

Deno.test("executor rejects a retry that arrives while the breaker is open and closes its unplaced order", async () => {
  const clock = new FakeClock();
  const gate = Promise.withResolvers<void>();
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" }, now: () => clock.now() });
  await using h = await startHarness({
    alpaca: fake,
    clock,
    retryBackoffMs: [50],
    retryGate: gate.promise,
  });
  fake.faults.add({ method: "POST", path: "/v2/orders", kind: "status", status: 500, times: 3 });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push(await h.accept({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 }));
    await h.execute(ids[i]!);
  }
  assert.equal((await h.status()).breaker, "open");
  assert.equal(postCount(fake), 3);

  gate.resolve(); // the three retries arrive while the breaker is open
  for (const id of ids) {
    const signal = await h.finished(id);
    assert.equal(signal.status, "rejected");
    const recordedReason = await reasonOf(h, id);
    assert.match(
      recordedReason ?? "",
      /^Cannot place order: the circuit breaker for "alpaca" is open until /,
    );
    const [order] = await h.orders(id);
    assert.equal(order?.status, "rejected");
    assert.equal(order?.brokerStatus, "not_placed");
    assert.equal(order?.reason, recordedReason);
  }
  await h.status();
  assert.equal(postCount(fake), 3);
  assert.equal(h.retries.length, 3);
  const open = await h.db.query("SELECT id FROM orders WHERE status = 'new'");
  assert.equal(open.length, 0);
  assert.equal((await h.status()).openOrders, 0);
});

// 5. The circuit breaker, on a fake clock with the default timings.

Deno.test("executor opens the breaker after 3 failures in 5 minutes, rejects while open, and closes after a probe", async () => {
  const clock = new FakeClock();
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" }, now: () => clock.now() });
  await using h = await startHarness({
    alpaca: fake,
    clock,
    // Beyond the default 60 s max age: a failed signal gives up at once, no retry follows.
    retryBackoffMs: [600_000],
  });
  fake.faults.add({ method: "POST", path: "/v2/orders", kind: "status", status: 500, times: 3 });
  const buy = { ticker: "AAPL", action: "buy", quantity: 1, price: 190 };

  let openedAt = 0;
  for (let i = 0; i < 3; i++) {
    if (i > 0) await clock.advance(90_000); // 3 failures spread over 3 minutes
    const failed = await h.run(buy);
    assert.equal(failed.status, "failed");
    assert.match(await reasonOf(h, failed.id) ?? "", /^Gave up after 1 attempt\(s\): /);
    const [order] = await h.orders(failed.id);
    assert.equal(order?.status, "rejected");
    openedAt = clock.now();
    assert.equal((await h.status()).breaker, i < 2 ? "closed" : "open");
  }
  assert.equal(h.retries.length, 0);
  assert.equal(postCount(fake), 3);
  const opened = await h.db.query<{ event: string; signal_id: string | null }>(
    "SELECT event, signal_id FROM journal WHERE account_id = $1 AND event LIKE 'breaker.%' ORDER BY id",
    [h.accountId],
  );
  assert.deepEqual([...opened], [{ event: "breaker.opened", signal_id: null }]);
  assert.equal(eventsOf(h, "breaker.opened").length, 1);
  const loud = h.lines.filter((l) =>
    l.message === "Circuit breaker opened: broker calls keep failing"
  );
  assert.equal(loud.length, 1);
  assert.equal(loud[0]?.level, "ERROR");

  // While open: rejected with the breaker and its reopen time; the broker never sees it.
  await clock.advance(60_000);
  const refused = await h.run(buy);
  assert.equal(refused.status, "rejected");
  const reopensAt = new Date(openedAt + 600_000).toISOString();
  const refusedReason = await reasonOf(h, refused.id);
  assert.equal(
    refusedReason,
    `Cannot place order: the circuit breaker for "alpaca" is open until ${reopensAt}`,
  );
  assert.equal(postCount(fake), 3);
  assert.ok(!fake.orders.has(refused.id));
  assert.deepEqual(await h.orders(refused.id), []);
  assert.deepEqual(eventsOf(h, "signal.rejected", refused.id).map((e) => e.data.reason), [
    refusedReason,
  ]);

  // After the cooldown the next signal is the probe; it succeeds and closes the breaker.
  await clock.advance(600_000);
  assert.equal((await h.status()).breaker, "half_open");
  const probe = await h.run(buy);
  assert.equal(probe.status, "filled");
  assert.equal(postCount(fake), 4);
  assert.equal((await h.status()).breaker, "closed");
  const transitions = await h.db.query<{ event: string }>(
    "SELECT event FROM journal WHERE account_id = $1 AND event LIKE 'breaker.%' ORDER BY id",
    [h.accountId],
  );
  assert.deepEqual(transitions.map((t) => t.event), ["breaker.opened", "breaker.closed"]);
  assert.equal(eventsOf(h, "breaker.closed").length, 1);
  assert.ok(h.lines.some((l) => l.message === "Circuit breaker closed: the broker answers again"));
  assert.equal(h.retries.length, 0);
});

// 6. Retries stop at the signal's maximum age.

Deno.test("executor gives up retrying before a signal's maximum age and fails it; no POST after the deadline", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" } });
  const posts: number[] = [];
  await using h = await startHarness({
    alpaca: fake,
    risk: { max_signal_age_seconds: 2 },
    // 0 s, 0.4 s, 0.8 s; the next would wait 5 s, past the 2 s maximum age.
    retryBackoffMs: [400, 400, 5_000],
    random: () => 0.5, // no jitter
    breaker: { failureThreshold: 50 }, // this test is about the deadline, not the breaker
    wrapBroker: (broker) => ({
      ...broker,
      kind: broker.kind,
      placeOrder(request: OrderRequest, signal?: AbortSignal): Promise<BrokerOrder> {
        posts.push(Date.now());
        return broker.placeOrder(request, signal);
      },
    }),
  });
  fake.faults.add({ method: "POST", path: "/v2/orders", kind: "status", status: 503, times: 20 });

  const id = await h.accept({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
  const received = (await getSignal(h.db, id))!.receivedAt.getTime();
  await h.execute(id);
  const signal = await h.finished(id);
  assert.equal(signal.status, "failed");
  assert.match(
    await reasonOf(h, id) ?? "",
    /^Gave up after 3 attempt\(s\): .+; another attempt would pass the signal's maximum age of 2 s$/,
  );
  assert.deepEqual(h.retries.map((r) => (r.payload as { attempt: number }).attempt), [2, 3]);
  const [order] = await h.orders(id);
  assert.equal(order?.status, "rejected");
  assert.equal(order?.brokerStatus, "not_placed");
  assert.equal(
    (await h.journal(id)).filter((j) => j.event === "order.failed").length,
    3,
  );
  // Nothing is left to deliver, so nothing can post later.
  await until(async () => (await h.queue.depth()).pending === 0, "the queue to drain");
  assert.equal(posts.length, 3);
  assert.equal(postCount(fake), 3);
  for (const at of posts) assert.ok(at <= received + 2_000, "a POST after the deadline");
  assert.equal(fake.orders.size, 0);
});

// 7. Recovery after a crash between writing the order and hearing from the broker.

async function crashAfterCreateOrder(h: Harness, signalId: string) {
  const now = new Date(h.clock.now());
  await h.db.query("UPDATE signals SET status = 'executing', dispatched_at = $2 WHERE id = $1", [
    signalId,
    now,
  ]);
  const { created } = await createOrder(
    h.db,
    marketBuyOrder({ userId: h.trader.userId, accountId: h.accountId }, signalId, uuidv7()),
    now,
  );
  assert.ok(created);
}

Deno.test("executor recovering an order the broker already holds records it from the look-up, without a POST", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" } });
  await using h = await startHarness({ alpaca: fake });
  const id = await h.accept({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
  await crashAfterCreateOrder(h, id);
  // The POST reached Alpaca before the crash.
  const { log } = memoryLogger();
  const placedBefore = await createAlpacaBroker({
    keyId: ALPACA_KEY_ID,
    secretKey: ALPACA_SECRET,
    paper: true,
    baseUrl: fake.url,
    timeoutMs: 2_000,
    log,
  }).placeOrder({
    clientOrderId: id,
    symbol: "AAPL",
    side: "buy",
    quantity: "1",
    type: "market",
    timeInForce: "day",
  });
  const seen = fake.requests.length;

  await h.execute(id, { recovering: true });
  const signal = await h.finished(id);
  assert.equal(signal.status, "filled");
  assert.deepEqual(orderRequests({ ...fake, requests: fake.requests.slice(seen) }), [
    "GET /v2/orders:by_client_order_id",
  ]);
  assert.equal(postCount(fake), 1);
  const rows = await h.orders(id);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.status, "filled");
  assert.equal(rows[0]?.brokerOrderId, placedBefore.id);
  assert.equal(num(rows[0]?.averageFillPrice), 190);
  const fills = await h.db.query("SELECT id FROM fills WHERE order_id = $1", [rows[0]!.id]);
  assert.equal(fills.length, 1);
  assert.equal(eventsOf(h, "trade.created", id).length, 1);
});

Deno.test("executor restarting after a crash posts an order the broker never received exactly once", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" } });
  await using h = await startHarness({ alpaca: fake, run: false });
  const id = await h.accept({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
  await crashAfterCreateOrder(h, id);

  // The restarted executor finds the unfinished signal by itself (init recovery).
  await h.start();
  const signal = await h.finished(id);
  assert.equal(signal.status, "filled");
  assert.deepEqual(orderRequests(fake), ["GET /v2/orders:by_client_order_id", "POST /v2/orders"]);
  // Told again (say ingest recovered it too): already done, the broker hears nothing.
  await h.execute(id, { recovering: true });
  await h.status();
  assert.equal(postCount(fake), 1);
  const rows = await h.orders(id);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.status, "filled");
  assert.equal(rows[0]?.brokerOrderId, fake.orders.get(id)?.id);
});

// 8. A poison signal fails alone.

class ExplodingPaperBroker extends PaperBroker {
  override placeOrder(request: OrderRequest): Promise<BrokerOrder> {
    if (request.symbol === "BOOM") {
      return Promise.reject(new TypeError("Cannot read properties of undefined (reading 'x')"));
    }
    return super.placeOrder(request);
  }
}

Deno.test("executor fails only the signal that hit an unexpected error and goes on with the next", async () => {
  await using h = await startHarness({
    paperBroker: (clock) =>
      new ExplodingPaperBroker({ settings: PaperSettingsSchema.parse({}), clock }),
  });
  const poison = await h.accept({ ticker: "BOOM", action: "buy", quantity: 1, price: 5 });
  const next = await h.accept({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 });
  await h.execute(poison);
  await h.execute(next);

  const failed = await h.finished(poison);
  assert.equal(failed.status, "failed");
  assert.equal(
    await reasonOf(h, poison),
    "Cannot execute the signal: internal error (logged for the operator)",
  );
  const logged = h.lines.find((l) => l.message === "Signal execution failed");
  assert.equal(logged?.level, "ERROR");
  assert.equal(logged?.signal_id, poison);
  assert.match(JSON.stringify(logged?.error), /TypeError/);
  assert.deepEqual(eventsOf(h, "signal.rejected", poison).map((e) => e.data.status), ["failed"]);

  const filled = await h.finished(next);
  assert.equal(filled.status, "filled");
  assert.equal(h.actor.status, "running");
  assert.equal((await h.status()).openOrders, 0);
});

// 9. Batches: a burst to a paper account is written in a few writes, as if one by one.

interface DbCounts {
  transactions: number;
  statements: number;
  /** Batch writes: one statement each, its own transaction. */
  batches?: number;
}

/** Transactions plus batch writes: every commit of executions. */
function writes(counts: DbCounts): number {
  return counts.transactions + (counts.batches ?? 0);
}

/** A database that counts what the executor asks of it, and fails the statements `fail` picks. */
function countingDb(db: Db, counts: DbCounts, fail?: (sql: string) => boolean): Db {
  const wrap = (q: Queryable): Queryable["query"] =>
    ((text: string, params?: readonly unknown[]) => {
      counts.statements++;
      if (text.includes("WITH orders_in AS")) counts.batches = (counts.batches ?? 0) + 1;
      if (fail?.(text)) return Promise.reject(new Error("Injected failure"));
      return q.query(text, params);
    }) as Queryable["query"];
  return {
    engine: db.engine,
    query: wrap(db),
    transaction(fn) {
      counts.transactions++;
      return db.transaction((tx) => fn({ query: wrap(tx) }));
    },
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    ping: (timeoutMs) => db.ping(timeoutMs),
    close: (timeoutMs) => db.close(timeoutMs),
  };
}

/** Hides the paper broker's class, so the executor takes its one-by-one path (the reference). */
function opaque(broker: Broker): Broker {
  return {
    kind: broker.kind,
    placeOrder: (o, s) => broker.placeOrder(o, s),
    getOrderByClientId: (id, s) => broker.getOrderByClientId(id, s),
    getOrder: (id, s) => broker.getOrder(id, s),
    openOrders: (s) => broker.openOrders(s),
    cancelOrder: (id, s) => broker.cancelOrder(id, s),
    account: (s) => broker.account(s),
    positions: (s) => broker.positions(s),
    clock: (s) => broker.clock(s),
  };
}

/** Accepts every payload, then tells all the executes at once (one mailbox burst). */
async function burst(h: Harness, payloads: Record<string, unknown>[]): Promise<string[]> {
  const ids: string[] = [];
  for (const p of payloads) ids.push(await h.accept(p));
  await Promise.all(ids.map((id) => h.execute(id)));
  for (const id of ids) await h.finished(id);
  await h.status();
  return ids;
}

/** Everything a burst left behind, with ids replaced by the signal's place in the burst. */
async function outcome(h: Harness, ids: string[]) {
  const index = new Map(ids.map((id, i) => [id, `#${i}`]));
  const name = (v: unknown) =>
    typeof v === "string" ? ids.reduce((s, id, i) => s.replaceAll(id, `#${i}`), v) : v;
  const rows = (sql: string) => h.db.query<Record<string, unknown>>(sql, [h.accountId]);
  const signals = await h.db.query(
    `SELECT id::text, status, reason, dispatched_at IS NOT NULL AS dispatched, ordered_at IS NOT NULL AS ordered,
            filled_at IS NOT NULL AS filled, finished_at IS NOT NULL AS finished
     FROM signals WHERE id = ANY($1::text::uuid[])`,
    [`{${ids.join(",")}}`],
  );
  const orders = await rows(
    `SELECT signal_id::text AS signal, leg, side, quantity::text, order_type, time_in_force, status, broker_status,
            filled_quantity::text, average_fill_price::text, limit_price::text, stop_price::text, reason,
            broker_order_id IS NOT NULL AS placed, created_at <= updated_at AS timely,
            (SELECT jsonb_agg(jsonb_build_array(e ->> 'status', e ->> 'broker_status'))
               FROM jsonb_array_elements(status_history) e) AS history
     FROM orders WHERE account_id = $1 ORDER BY signal_id, leg`,
  );
  const fills = await rows(
    `SELECT o.signal_id::text AS signal, f.symbol, f.side, f.quantity::text, f.price::text, f.fee::text,
            f.realized_pnl::text, f.broker_fill_id = o.broker_order_id || ':' || o.filled_quantity AS fill_id
     FROM fills f JOIN orders o ON o.id = f.order_id WHERE f.account_id = $1 ORDER BY o.signal_id`,
  );
  const positions = await rows(
    `SELECT p.symbol, p.quantity::text, p.average_price::text, p.realized_pnl::text, p.last_price::text,
            p.opened_at IS NOT NULL AS opened,
            p.quantity = 0 OR p.opened_at = (SELECT t.opened_at FROM trades t WHERE t.account_id = p.account_id
              AND t.symbol = p.symbol AND t.status = 'open') AS opened_with_trade
     FROM positions p WHERE p.account_id = $1 ORDER BY p.symbol`,
  );
  const trades = await rows(
    `SELECT symbol, direction, quantity::text, entry_price::text, exit_price::text, stop_loss::text,
            realized_pnl::text, fees::text, status, entry_signal_id::text AS entry, exit_signal_id::text AS exit,
            closed_at IS NOT NULL AS closed
     FROM trades WHERE account_id = $1 ORDER BY entry_signal_id`,
  );
  const journal = await rows(
    `SELECT signal_id::text AS signal, order_id IS NOT NULL AS with_order, event, data
     FROM journal WHERE account_id = $1 ORDER BY id`,
  );
  const rename = (r: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, name(v)]));
  return {
    signals: signals.map(rename).sort((a, b) => String(a.id).localeCompare(String(b.id))),
    orders: orders.map(rename).sort((a, b) =>
      String(a.signal).localeCompare(String(b.signal)) || String(a.leg).localeCompare(String(b.leg))
    ),
    fills: fills.map(rename).sort((a, b) => String(a.signal).localeCompare(String(b.signal))),
    positions,
    trades: trades.map(rename).sort((a, b) => String(a.entry).localeCompare(String(b.entry))),
    journal: journal.map((j) => ({
      ...rename(j),
      data: rename(j.data as Record<string, unknown>),
    })),
    events: h.events.filter((e) => e.signalId && index.has(e.signalId)).map((e) => ({
      type: e.type,
      signal: name(e.signalId),
      data: rename(Object.fromEntries(Object.entries(e.data).filter(([k]) => k !== "orderId"))),
    })),
  };
}

const PAPER = { slippage_bps: 10, fee_per_unit: 0.25 };

/** Opens, resizes, closes, shorts, flips and reopens; a bracket and a signal behind it go one by one. */
const BURST = [
  { ticker: "AAPL", action: "buy", quantity: 2, price: 190 },
  { ticker: "MSFT", action: "sell", quantity: 3, price: 400 },
  { ticker: "AAPL", action: "buy", quantity: 1, price: 192.5 },
  { ticker: "AAPL", action: "close", price: 195 },
  { ticker: "MSFT", action: "buy", quantity: 5, price: 390 },
  { ticker: "AAPL", action: "buy", quantity: 1, price: 196 },
  { ticker: "NVDA", action: "buy", quantity: 4, price: 100, stop_loss: 95 },
  { ticker: "NVDA", action: "buy", quantity: 1, price: 101 },
  { ticker: "MSFT", action: "close", price: 395.25 },
  { ticker: "AAPL", action: "sell", quantity: 1, price: 197 },
  { ticker: "TSLA", action: "sell", quantity: 2, price: 250 },
  { ticker: "TSLA", action: "sell", quantity: 1, price: 251 },
];

for (const engine of ENGINES) {
  Deno.test(`${engine}: executor writes a burst to a paper account in fewer transactions, exactly as one by one`, async () => {
    const reference = await (async () => {
      await using h = await startHarness({ engine, paper: PAPER, wrapBroker: opaque });
      const ids = await burst(h, BURST);
      return await outcome(h, ids);
    })();

    const counts: DbCounts = { transactions: 0, statements: 0 };
    await using h = await startHarness({
      engine,
      paper: PAPER,
      wrapDb: (db) => countingDb(db, counts),
    });
    counts.transactions = counts.statements = 0;
    const ids = await burst(h, BURST);
    const batched = await outcome(h, ids);

    assert.deepEqual(batched, reference);
    // The bracket and the NVDA signal behind it (a stop rests on NVDA) go one by one: three
    // transactions for them, one batch write for the fills before them and one for those after.
    assert.ok(writes(counts) < ids.length, `${writes(counts)} writes for ${ids.length} signals`);
    assert.equal(counts.transactions, 3);
    assert.equal(counts.batches, 2);
    assert.equal(batched.signals.filter((s) => s.status === "filled").length, ids.length);
    assert.deepEqual(batched.positions.map((p) => [p.symbol, Number(p.quantity)]), [
      ["AAPL", 0],
      ["MSFT", 0],
      ["NVDA", 5],
      ["TSLA", -3],
    ]);
  });
}

for (const engine of ENGINES) {
  Deno.test(`${engine}: executor flips and reopens a position stored before the batch, exactly as one by one`, async () => {
    const run = async (wrapBroker?: (b: Broker) => Broker) => {
      await using h = await startHarness({ engine, paper: PAPER, wrapBroker });
      const first = await burst(h, [{ ticker: "AAPL", action: "buy", quantity: 2, price: 190 }]);
      // The stored open trade is closed and a short opened in the same write, then covered and
      // a long opened again: the one-open-trade index sees one open trade at every step.
      const second = await burst(h, [
        { ticker: "AAPL", action: "sell", quantity: 3, price: 191 },
        { ticker: "AAPL", action: "buy", quantity: 2, price: 189 },
        { ticker: "MSFT", action: "buy", quantity: 1, price: 400 },
      ]);
      return await outcome(h, [...first, ...second]);
    };
    const reference = await run(opaque);
    const batched = await run();
    assert.deepEqual(batched, reference);
    assert.deepEqual(
      batched.trades.map((t) => [t.symbol, t.direction, t.status, Number(t.quantity)]),
      [
        ["AAPL", "long", "closed", 2],
        ["AAPL", "short", "closed", 1],
        ["AAPL", "long", "open", 1],
        ["MSFT", "long", "open", 1],
      ],
    );
  });
}

for (const [path, wrapBroker] of [["batched", undefined], ["one by one", opaque]] as const) {
  Deno.test(`executor (${path}): a flipped position is opened when it flips, not when the old side opened`, async () => {
    const clock = new FakeClock();
    await using h = await startHarness({ clock, wrapBroker });
    const openedAt = async () => {
      const [row] = await h.db.query<{ opened_at: Date }>(
        "SELECT opened_at FROM positions WHERE account_id = $1 AND symbol = 'AAPL'",
        [h.accountId],
      );
      return row?.opened_at.getTime();
    };
    const start = clock.now();
    await burst(h, [{ ticker: "AAPL", action: "buy", quantity: 2, price: 190 }]);
    assert.equal(await openedAt(), start);
    await clock.advance(60_000);
    await burst(h, [{ ticker: "AAPL", action: "buy", quantity: 1, price: 191 }]);
    assert.equal(await openedAt(), start, "adding to the long keeps its opening");
    await clock.advance(60_000);
    await burst(h, [{ ticker: "AAPL", action: "sell", quantity: 5, price: 192 }]);
    assert.equal(await positionOf(h), -2);
    assert.equal(await openedAt(), start + 120_000, "the short opened with the flip");
    await clock.advance(60_000);
    await burst(h, [{ ticker: "AAPL", action: "buy", quantity: 1, price: 189 }]);
    assert.equal(await openedAt(), start + 120_000, "reducing the short keeps its opening");
  });
}

Deno.test("executor writes a burst of fresh paper market orders in one statement", async () => {
  const counts: DbCounts = { transactions: 0, statements: 0 };
  await using h = await startHarness({ wrapDb: (db) => countingDb(db, counts) });
  counts.transactions = counts.statements = 0;
  const payloads = Array.from({ length: 40 }, (_, i) => ({
    ticker: i % 2 ? "AAPL" : "MSFT",
    action: i % 3 ? "buy" : "sell",
    quantity: 1 + (i % 4),
    price: 100 + i,
  }));
  const ids = await burst(h, payloads);
  for (const id of ids) assert.equal((await getSignal(h.db, id))?.status, "filled");
  // One claim, then one statement that writes the whole burst; neither grows with it.
  assert.equal(counts.transactions, 0);
  assert.equal(counts.batches, 1);
  assert.equal(counts.statements, 2);
  assert.equal(eventsOf(h, "trade.created").length, ids.length);
});

Deno.test("executor rejects only the signal of a batch that breaks a risk limit", async () => {
  await using h = await startHarness({ risk: { max_order_quantity: 10, max_position: 6 } });
  const ids = await burst(h, [
    { ticker: "AAPL", action: "buy", quantity: 2, price: 190 },
    { ticker: "AAPL", action: "buy", quantity: 11, price: 190 },
    { ticker: "AAPL", action: "buy", quantity: 3, price: 191 },
    // The position is 5 after the fills before it, in the same batch: 5 + 2 > 6.
    { ticker: "AAPL", action: "buy", quantity: 2, price: 191 },
    { ticker: "AAPL", action: "sell", quantity: 1, price: 192 },
  ]);
  const statuses = [];
  for (const id of ids) statuses.push((await getSignal(h.db, id))?.status);
  assert.deepEqual(statuses, ["filled", "rejected", "filled", "rejected", "filled"]);
  const reasons = await h.db.query<{ reason: string | null }>(
    "SELECT reason FROM signals WHERE id = ANY($1::text::uuid[]) AND status = 'rejected' ORDER BY id",
    [`{${ids.join(",")}}`],
  );
  assert.deepEqual(reasons.map((r) => r.reason), [
    "Quantity 11 exceeds the maximum order quantity of 10",
    "Position would become 7, beyond the maximum position of 6",
  ]);
  assert.deepEqual(await h.orders(ids[1]!), []);
  assert.deepEqual(await h.orders(ids[3]!), []);
  const [position] = await h.db.query<{ quantity: string }>(
    "SELECT quantity::text AS quantity FROM positions WHERE account_id = $1 AND symbol = 'AAPL'",
    [h.accountId],
  );
  assert.equal(num(position?.quantity), 4);
  assert.deepEqual(
    h.events.filter((e) => e.type === "signal.rejected" || e.type === "trade.created").map((e) => [
      e.type,
      ids.indexOf(e.signalId!),
    ]),
    [
      ["trade.created", 0],
      ["signal.rejected", 1],
      ["trade.created", 2],
      ["signal.rejected", 3],
      ["trade.created", 4],
    ],
  );
});

Deno.test("executor closes, within one batch, the position a buy of the same batch opened", async () => {
  const counts: DbCounts = { transactions: 0, statements: 0 };
  await using h = await startHarness({ wrapDb: (db) => countingDb(db, counts) });
  counts.transactions = counts.statements = 0;
  const [buy, close] = await burst(h, [
    { ticker: "AAPL", action: "buy", quantity: 2, price: 190 },
    { ticker: "AAPL", action: "close", price: 195 },
  ]);
  assert.equal(writes(counts), 1);
  assert.equal(counts.batches, 1);
  assert.equal((await getSignal(h.db, close!))?.status, "filled");
  const [exit] = await h.orders(close!);
  assert.equal(exit?.side, "sell");
  assert.equal(num(exit?.filledQuantity), 2);
  const trades = await h.db.query<Record<string, string>>(
    `SELECT status, realized_pnl::text AS pnl, entry_signal_id::text AS entry, exit_signal_id::text AS exit
     FROM trades WHERE account_id = $1`,
    [h.accountId],
  );
  assert.deepEqual(trades.map((t) => [t.status, num(t.pnl), t.entry, t.exit]), [
    ["closed", 10, buy, close],
  ]);
  assert.deepEqual(eventsOf(h, "trade.closed").map((e) => e.signalId), [close]);
});

Deno.test("executor crashing on a failed batch write leaves nothing half-written; recovery fills each signal once", async () => {
  const counts: DbCounts = { transactions: 0, statements: 0 };
  let failures = 0;
  await using h = await startHarness({
    wrapDb: (db) =>
      countingDb(db, counts, (sql) => {
        // The batch's write, once: orders, fills, positions, trades, signals and journal.
        if (failures > 0 || !sql.includes("WITH orders_in AS")) {
          return false;
        }
        failures++;
        return true;
      }),
  });
  const payloads = [
    { ticker: "AAPL", action: "buy", quantity: 2, price: 190 },
    { ticker: "AAPL", action: "buy", quantity: 1, price: 191 },
    { ticker: "MSFT", action: "sell", quantity: 1, price: 400 },
    { ticker: "AAPL", action: "close", price: 195 },
  ];
  const ids: string[] = [];
  for (const p of payloads) ids.push(await h.accept(p));
  await Promise.all(ids.map((id) => h.execute(id)));
  await until(() => h.actor.status === "crashed", "the executor to crash");
  assert.equal(failures, 1);

  const count = async (sql: string) =>
    Number((await h.db.query<{ n: string }>(sql, [h.accountId]))[0]?.n);
  assert.equal(await count("SELECT count(*) AS n FROM orders WHERE account_id = $1"), 0);
  assert.equal(await count("SELECT count(*) AS n FROM fills WHERE account_id = $1"), 0);
  assert.equal(await count("SELECT count(*) AS n FROM positions WHERE account_id = $1"), 0);
  assert.equal(await count("SELECT count(*) AS n FROM trades WHERE account_id = $1"), 0);
  assert.equal(
    await count(
      "SELECT count(*) AS n FROM journal WHERE account_id = $1 AND event <> 'signal.accepted'",
    ),
    0,
  );
  // Read but never claimed: the failed write was also their claim.
  for (const id of ids) assert.equal((await getSignal(h.db, id))?.status, "accepted");
  assert.equal(eventsOf(h, "trade.created").length, 0);

  // The restart (the supervisor's job) recovers every claimed signal.
  await h.start();
  for (const id of ids) assert.equal((await h.finished(id)).status, "filled");
  // Told again (ingest recovering them too): already done.
  for (const id of ids) await h.execute(id, { recovering: true });
  await h.execute(ids[0]!);
  await h.status();
  for (const id of ids) {
    assert.equal((await h.orders(id)).length, 1);
    assert.deepEqual(
      (await h.journal(id)).map((j) => j.event),
      ["signal.accepted", "order.created", "order.updated", "order.filled", "signal.filled"],
    );
    assert.equal(eventsOf(h, "trade.created", id).length, 1);
  }
  assert.equal(await count("SELECT count(*) AS n FROM fills WHERE account_id = $1"), ids.length);
  const positions = await h.db.query<{ symbol: string; quantity: string }>(
    "SELECT symbol, quantity::text AS quantity FROM positions WHERE account_id = $1 ORDER BY symbol",
    [h.accountId],
  );
  assert.deepEqual(positions.map((p) => [p.symbol, num(p.quantity)]), [["AAPL", 0], ["MSFT", -1]]);
  const trades = await h.db.query<{ status: string }>(
    "SELECT status FROM trades WHERE account_id = $1 ORDER BY opened_at, id",
    [h.accountId],
  );
  assert.deepEqual(trades.map((t) => t.status).sort(), ["closed", "open"]);
});

// 10. Bracket legs (LEG_RULE): canceled before an order that reduces, closes or flips their
// position, kept when an order adds to it.

const BRACKET = {
  ticker: "AAPL",
  action: "buy",
  quantity: 10,
  price: 100,
  take_profit: 110,
  stop_loss: 95,
};

const LEG_ORDER = ["entry", "take_profit", "stop_loss"];

/** A bracket's orders, entry first, then take profit, then stop loss (written in one instant). */
async function bracketRows(h: Harness, entryId: string): Promise<OrderDbRow[]> {
  return (await h.orders(entryId)).sort((a, b) =>
    LEG_ORDER.indexOf(a.leg) - LEG_ORDER.indexOf(b.leg)
  );
}

async function legRows(h: Harness, entryId: string): Promise<OrderDbRow[]> {
  return (await bracketRows(h, entryId)).filter((o) => o.leg !== "entry");
}

interface LegsJournal {
  signal_id: string | null;
  order_id: string | null;
  data: { rule: string; why: string; legs: Array<{ order_id: string; status: string }> };
}

async function legsJournal(h: Harness): Promise<LegsJournal[]> {
  return [
    ...await h.db.query<LegsJournal & Record<string, unknown>>(
      `SELECT signal_id::text AS signal_id, order_id::text AS order_id, data FROM journal
       WHERE account_id = $1 AND event = 'legs.canceled' ORDER BY id`,
      [h.accountId],
    ),
  ];
}

/** AAPL at 90 then 120, a minute apart: through both exits of a 95 / 110 bracket; then settled. */
async function pricesThroughOldExits(h: Harness, clock: FakeClock) {
  for (const price of ["90", "120"]) {
    await clock.advance(60_000);
    await h.actor.ref.tell({ type: "price", symbol: "AAPL", price, at: clock.now() });
  }
  await h.status();
}

async function positionOf(h: Harness, symbol = "AAPL"): Promise<number> {
  const [row] = await h.db.query<{ quantity: string }>(
    "SELECT quantity::text AS quantity FROM positions WHERE account_id = $1 AND symbol = $2",
    [h.accountId, symbol],
  );
  return num(row?.quantity ?? 0);
}

async function fillCount(h: Harness): Promise<number> {
  return (await h.db.query("SELECT id FROM fills WHERE account_id = $1", [h.accountId])).length;
}

/** Order calls at the fake since request `from`, with the legs' ids named. */
function orderCalls(fake: FakeAlpaca, from: number, names: Record<string, string>): string[] {
  return fake.requests.slice(from).filter((r) => r.path.startsWith("/v2/orders")).map((r) => {
    const id = r.path.split("/")[3];
    return id ? `${r.method} ${names[id] ?? id}` : `${r.method} ${r.path}`;
  });
}

/** A bracket entry filled at the fake, with its two exit legs open. */
async function alpacaBracket(h: Harness, fake: FakeAlpaca) {
  const entry = await h.run(BRACKET);
  assert.equal(entry.status, "filled");
  const [tp, sl] = fake.orders.get(entry.id)!.legs!;
  assert.deepEqual([tp!.status, sl!.status], ["new", "new"]);
  assert.deepEqual((await legRows(h, entry.id)).map((l) => l.status), ["pending", "pending"]);
  return { entry, tp: tp!, sl: sl!, names: { [tp!.id]: "tp", [sl!.id]: "sl" } };
}

Deno.test("executor cancels an Alpaca bracket's open legs before the close, then sells it all", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake });
  const { entry, tp, sl, names } = await alpacaBracket(h, fake);
  const seen = fake.requests.length;

  const close = await h.run({ ticker: "AAPL", action: "close", price: 105 });
  assert.equal(close.status, "filled");
  // Each leg canceled and read back before the sell; the sell no longer meets held shares.
  assert.deepEqual(orderCalls(fake, seen, names), [
    "DELETE tp",
    "GET tp",
    "DELETE sl",
    "GET sl",
    "POST /v2/orders",
  ]);
  assert.deepEqual([tp.status, sl.status], ["canceled", "canceled"]);
  const sell = fake.orders.get(close.id);
  assert.deepEqual([sell?.side, sell?.qty, sell?.status], ["sell", "10", "filled"]);

  const legs = await legRows(h, entry.id);
  assert.deepEqual(legs.map((l) => [l.leg, l.status]), [
    ["take_profit", "canceled"],
    ["stop_loss", "canceled"],
  ]);
  for (const leg of legs) {
    assert.equal(leg.reason, `Canceled: order "${close.id}" sells against the long position`);
  }
  const events = (await h.journal(close.id)).map((j) => j.event);
  assert.deepEqual(
    events.filter((e) => ["order.created", "legs.canceled", "order.filled"].includes(e)),
    ["order.created", "legs.canceled", "order.filled"],
  );
  const [canceled, ...more] = await legsJournal(h);
  assert.equal(more.length, 0);
  assert.equal(canceled?.signal_id, close.id);
  assert.deepEqual(
    canceled?.data.legs.map((l) => [l.order_id, l.status]).sort(),
    legs.map((l) => [l.id, "canceled"]).sort(),
  );
  assert.equal(await positionOf(h), 0);
  assert.equal((await h.status()).openOrders, 0);
  assert.deepEqual(
    eventsOf(h, "trade.updated").filter((e) => e.data.leg !== "entry").map((e) => [
      e.data.leg,
      e.data.status,
    ]),
    [["take_profit", "canceled"], ["stop_loss", "canceled"]],
  );
});

Deno.test("executor polls Alpaca with one listing of open orders, reading back only those that left it", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100", MSFT: "200", NVDA: "300" } });
  await using h = await startHarness({ alpaca: fake });
  // Three bracketed positions: six exit legs resting at the broker, tracked by the executor.
  const entries = [];
  for (const [ticker, price] of [["AAPL", 100], ["MSFT", 200], ["NVDA", 300]] as const) {
    const entry = await h.run({
      ticker,
      action: "buy",
      quantity: 10,
      price,
      take_profit: price + 10,
      stop_loss: price - 5,
    });
    assert.equal(entry.status, "filled");
    entries.push(entry);
  }
  assert.equal((await h.status()).openOrders, 6);
  const poll = async () => {
    const seen = fake.requests.length;
    await h.actor.ref.tell({ type: "poll" });
    await h.status(); // after the poll, in the executor's order
    return fake.requests.slice(seen).map((r) => `${r.method} ${r.path}`);
  };

  // Nothing moved: one request, whatever the number of orders.
  assert.deepEqual(await poll(), ["GET /v2/orders"]);

  // AAPL's take profit fills at the broker, which cancels its stop: those two leave the list and
  // are each read back; the other four are answered by the listing.
  const [tp, sl] = fake.orders.get(entries[0]!.id)!.legs!;
  fake.fillOrder(tp!.id, undefined, "110");
  assert.deepEqual(
    (await poll()).sort(),
    ["GET /v2/orders", `GET /v2/orders/${sl!.id}`, `GET /v2/orders/${tp!.id}`].sort(),
  );
  assert.deepEqual((await legRows(h, entries[0]!.id)).map((l) => [l.leg, l.status]), [
    ["take_profit", "filled"],
    ["stop_loss", "canceled"],
  ]);
  assert.equal(await positionOf(h, "AAPL"), 0);
  assert.equal(await positionOf(h, "MSFT"), 10);
  assert.equal((await h.status()).openOrders, 4);
  assert.deepEqual(await poll(), ["GET /v2/orders"]);

  // The listing failing (a 503) changes nothing and the next poll catches up.
  fake.faults.add({ method: "GET", path: "/v2/orders", kind: "status", status: 503 });
  assert.deepEqual(await poll(), ["GET /v2/orders"]);
  assert.equal((await h.status()).openOrders, 4);
  assert.ok(h.lines.some((l) => l.message === "Cannot list open orders"));
});

Deno.test("executor lets one timer poll wait at most: a broker that was slow gets no burst after", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  let listings = 0;
  let gate: Promise<void> | undefined;
  await using h = await startHarness({
    alpaca: fake,
    pollIntervalMs: 10,
    wrapBroker: (broker) => ({
      ...broker,
      openOrders: async (signal) => {
        listings++;
        await gate;
        return await broker.openOrders(signal);
      },
    }),
  });
  await alpacaBracket(h, fake); // two legs to watch
  // The broker hangs a listing: some thirty ticks pass meanwhile.
  const { promise, resolve } = Promise.withResolvers<void>();
  gate = promise;
  const before = listings;
  const deadline = Date.now() + 5_000;
  while (listings === before && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(listings, before + 1, "one listing hangs, and no other starts meanwhile");
  gate = undefined;
  resolve();
  // After it answers, at most the one waiting poll runs at once, then the timer's pace again
  // (queued polls would have run about thirty listings back to back).
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(listings - before <= 6, `${listings - before} listings`);
});

Deno.test("executor cancels a paper bracket's resting legs before the close; they never fill later", async () => {
  const clock = new FakeClock();
  await using h = await startHarness({ clock });
  const entry = await h.run(BRACKET);
  assert.equal((await h.status()).openOrders, 2);

  const close = await h.run({ ticker: "AAPL", action: "close", price: 104 });
  assert.equal(close.status, "filled");
  const [exit] = await h.orders(close.id);
  assert.deepEqual([exit?.side, num(exit?.filledQuantity)], ["sell", 10]);
  const legs = await legRows(h, entry.id);
  assert.deepEqual(legs.map((l) => l.status), ["canceled", "canceled"]);
  assert.equal((await legsJournal(h))[0]?.signal_id, close.id);
  assert.equal((await h.status()).openOrders, 0);

  // Prices through both old exits: nothing fills, the position stays flat.
  await pricesThroughOldExits(h, clock);
  assert.equal(await fillCount(h), 2);
  assert.equal(await positionOf(h), 0);
  assert.deepEqual((await legRows(h, entry.id)).map((l) => l.status), ["canceled", "canceled"]);
  const trades = await h.db.query<{ status: string }>(
    "SELECT status FROM trades WHERE account_id = $1",
    [h.accountId],
  );
  assert.deepEqual(trades.map((t) => t.status), ["closed"]);
});

Deno.test("executor cancels the legs before a flip, and the new short never meets the old exits", async () => {
  const clock = new FakeClock();
  await using h = await startHarness({ clock });
  const entry = await h.run(BRACKET);

  const flip = await h.run({ ticker: "AAPL", action: "sell", quantity: 15, price: 104 });
  assert.equal(flip.status, "filled");
  assert.equal(await positionOf(h), -5);
  const legs = await legRows(h, entry.id);
  assert.deepEqual(legs.map((l) => l.status), ["canceled", "canceled"]);
  for (const leg of legs) {
    assert.equal(leg.reason, `Canceled: order "${flip.id}" sells against the long position`);
  }
  await pricesThroughOldExits(h, clock);
  assert.equal(await fillCount(h), 2);
  assert.equal(await positionOf(h), -5);
  const trades = await h.db.query<{ status: string; direction: string; quantity: string }>(
    "SELECT status, direction, quantity::text AS quantity FROM trades WHERE account_id = $1 ORDER BY opened_at",
    [h.accountId],
  );
  assert.deepEqual(trades.map((t) => [t.status, t.direction, num(t.quantity)]), [
    ["closed", "long", 10],
    ["open", "short", 5],
  ]);
});

Deno.test("executor keeps the legs when an order adds to the position in their entry's direction", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake });
  const { entry, tp, sl, names } = await alpacaBracket(h, fake);
  const seen = fake.requests.length;

  const add = await h.run({ ticker: "AAPL", action: "buy", quantity: 5, price: 101 });
  assert.equal(add.status, "filled");
  assert.deepEqual(orderCalls(fake, seen, names), ["POST /v2/orders"]);
  assert.deepEqual([tp.status, sl.status], ["new", "new"]);
  assert.deepEqual((await legRows(h, entry.id)).map((l) => l.status), ["pending", "pending"]);
  assert.deepEqual(await legsJournal(h), []);
  assert.equal(await positionOf(h), 15);
  assert.equal((await h.status()).openOrders, 2);

  // The close that follows cancels them and sells all 15.
  const close = await h.run({ ticker: "AAPL", action: "close", price: 102 });
  assert.equal(close.status, "filled");
  assert.equal(fake.orders.get(close.id)?.qty, "15");
  assert.deepEqual([tp.status, sl.status], ["canceled", "canceled"]);
  assert.equal(await positionOf(h), 0);
});

Deno.test("executor whose close finds a leg filled in the race submits nothing and says why", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake });
  const { entry, tp, sl, names } = await alpacaBracket(h, fake);
  // The take profit fills at the broker; the executor has not polled it yet.
  fake.fillOrder(tp.id);
  assert.deepEqual([tp.status, sl.status], ["filled", "canceled"]);
  const seen = fake.requests.length;

  const close = await h.run({ ticker: "AAPL", action: "close", price: 110 });
  assert.equal(close.status, "canceled");
  assert.equal(
    await reasonOf(h, close.id),
    "Nothing left to sell: exit legs on AAPL filled 10 before they could be canceled, which did this order's work",
  );
  assert.deepEqual(orderCalls(fake, seen, names), ["DELETE tp", "GET tp", "DELETE sl", "GET sl"]);
  assert.equal(postCount(fake), 1);
  assert.ok(!fake.orders.has(close.id));
  const [exit] = await h.orders(close.id);
  assert.deepEqual([exit?.status, exit?.brokerStatus], ["canceled", "not_placed"]);

  const legs = await legRows(h, entry.id);
  assert.deepEqual(legs.map((l) => [l.leg, l.status, num(l.filledQuantity)]), [
    ["take_profit", "filled", 10],
    ["stop_loss", "canceled", 0],
  ]);
  assert.equal(legs[1]?.reason, null, "the broker canceled it (OCO), not us");
  assert.equal(await positionOf(h), 0);
  const [trade] = await h.db.query<Record<string, string>>(
    "SELECT status, exit_price::text AS exit_price, realized_pnl::text AS pnl FROM trades WHERE account_id = $1",
    [h.accountId],
  );
  assert.deepEqual([trade?.status, num(trade?.exit_price), num(trade?.pnl)], ["closed", 110, 100]);
  assert.deepEqual(
    (await legsJournal(h))[0]?.data.legs.map((l) => l.status),
    ["filled", "canceled"],
  );
  assert.deepEqual(eventsOf(h, "signal.rejected", close.id).map((e) => e.data.status), [
    "canceled",
  ]);
  assert.equal((await h.status()).openOrders, 0);
});

Deno.test("executor shrinks the close by what a leg filled in the race, never overselling", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake });
  const { entry, tp, sl } = await alpacaBracket(h, fake);
  fake.fillOrder(tp.id, "4"); // part of the take profit fills; the executor does not know yet

  const close = await h.run({ ticker: "AAPL", action: "close", price: 110 });
  assert.equal(close.status, "filled");
  assert.deepEqual([tp.status, tp.filled_qty, sl.status], ["canceled", "4", "canceled"]);
  const sell = fake.orders.get(close.id);
  assert.deepEqual([sell?.qty, sell?.status], ["6", "filled"]);
  const [exit] = await h.orders(close.id);
  assert.deepEqual([num(exit?.quantity), num(exit?.filledQuantity)], [6, 6]);
  const resized = (await h.journal(close.id)).filter((j) => j.event === "order.resized");
  assert.deepEqual(resized.map((j) => [j.data.from, j.data.to, j.data.legs_filled]), [[
    "10",
    "6",
    "4",
  ]]);
  assert.equal(resized[0]?.data.reason, "exit legs on AAPL filled before they could be canceled");
  const legs = await legRows(h, entry.id);
  assert.deepEqual(legs.map((l) => [l.status, num(l.filledQuantity)]), [
    ["canceled", 4],
    ["canceled", 0],
  ]);
  assert.equal(await positionOf(h), 0);
  const fills = await h.db.query<{ quantity: string }>(
    "SELECT quantity::text AS quantity FROM fills WHERE account_id = $1 ORDER BY filled_at, id",
    [h.accountId],
  );
  assert.deepEqual(fills.map((f) => num(f.quantity)), [10, 4, 6]);
});

Deno.test("executor retries a leg cancel that failed retryably through the queue, then closes once", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake, retryBackoffMs: [100] });
  const { tp, sl, names } = await alpacaBracket(h, fake);
  const seen = fake.requests.length;
  fake.faults.add({ method: "DELETE", path: `/v2/orders/${tp.id}`, kind: "status", status: 503 });

  const close = await h.run({ ticker: "AAPL", action: "close", price: 105 });
  assert.equal(close.status, "filled");
  assert.deepEqual(orderCalls(fake, seen, names), [
    "DELETE tp", // 503: the signal goes back to the queue, nothing is submitted
    "GET /v2/orders:by_client_order_id", // attempt 2 looks for the order first
    "DELETE tp",
    "GET tp",
    "DELETE sl",
    "GET sl",
    "POST /v2/orders",
  ]);
  assert.deepEqual(h.retries.map((r) => (r.payload as { attempt: number }).attempt), [2]);
  const journal = await h.journal(close.id);
  const failed = journal.filter((j) => j.event === "legs.cancel_failed");
  assert.deepEqual(failed.map((j) => [j.data.attempt, j.data.kind, j.data.status]), [[
    1,
    "unavailable",
    503,
  ]]);
  assert.deepEqual(
    journal.map((j) => j.event).filter((e) => e.startsWith("legs.") || e === "order.filled"),
    ["legs.cancel_failed", "legs.canceled", "order.filled"],
  );
  assert.deepEqual([tp.status, sl.status], ["canceled", "canceled"]);
  assert.equal(postCount(fake), 2);
  assert.equal(fake.orders.get(close.id)?.status, "filled");
  assert.equal(await positionOf(h), 0);
  assert.deepEqual(h.breakerSaves.at(-1), { failures: [], openUntil: null });
});

Deno.test("executor rejects the signal loudly when the broker refuses to cancel a leg, submitting nothing", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake });
  const { entry, tp, sl } = await alpacaBracket(h, fake);
  fake.faults.add({
    method: "DELETE",
    path: `/v2/orders/${tp.id}`,
    kind: "status",
    status: 422,
    body: { code: 42210000, message: "order is not cancelable" },
  });

  const close = await h.run({ ticker: "AAPL", action: "close", price: 105 });
  assert.equal(close.status, "rejected");
  const reason =
    "Cannot cancel the open bracket legs on AAPL before the order: order is not cancelable; nothing was submitted";
  assert.equal(await reasonOf(h, close.id), reason);
  assert.deepEqual(eventsOf(h, "signal.rejected", close.id).map((e) => e.data.reason), [reason]);
  assert.ok(h.lines.some((l) => l.message === "Signal not executed" && l.reason === reason));
  assert.equal(postCount(fake), 1);
  assert.ok(!fake.orders.has(close.id));
  const [exit] = await h.orders(close.id);
  assert.deepEqual([exit?.status, exit?.brokerStatus, exit?.reason], [
    "rejected",
    "not_placed",
    reason,
  ]);
  const failed = (await h.journal(close.id)).filter((j) => j.event === "legs.cancel_failed");
  assert.deepEqual(failed.map((j) => [j.data.kind, j.data.status]), [["rejected", 422]]);
  // Nothing was changed: the legs still protect the position.
  assert.deepEqual([tp.status, sl.status], ["new", "new"]);
  assert.deepEqual((await legRows(h, entry.id)).map((l) => l.status), ["pending", "pending"]);
  assert.deepEqual(await legsJournal(h), []);
  assert.equal(await positionOf(h), 10);
  assert.equal(h.retries.length, 0);
});

const CRASH_POINTS = {
  "after the broker canceled a leg, before it was recorded": "cancel",
  "after the legs were recorded canceled, just before the submit": "submit",
} as const;

for (const [when, point] of Object.entries(CRASH_POINTS)) {
  Deno.test(`executor crashing ${when} submits the close exactly once after the restart`, async () => {
    await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
    let armed = false;
    const died = () => new Deno.errors.ConnectionReset("the process died here");
    await using h = await startHarness({
      alpaca: fake,
      wrapBroker: (broker) => ({
        ...broker,
        kind: broker.kind,
        async cancelOrder(id: string, signal?: AbortSignal) {
          await broker.cancelOrder(id, signal);
          if (armed && point === "cancel") {
            armed = false;
            throw died();
          }
        },
        placeOrder(request: OrderRequest, signal?: AbortSignal): Promise<BrokerOrder> {
          if (armed && point === "submit") {
            armed = false;
            return Promise.reject(died());
          }
          return broker.placeOrder(request, signal);
        },
      }),
    });
    const { entry, tp, sl } = await alpacaBracket(h, fake);
    armed = true;
    const id = await h.accept({ ticker: "AAPL", action: "close", price: 105 });
    await h.execute(id);
    await until(() => h.actor.status === "crashed", "the executor to crash");
    assert.equal((await getSignal(h.db, id))?.status, "executing");
    assert.equal(postCount(fake), 1);

    // The restart (the supervisor's job) recovers the signal by itself.
    await h.start();
    assert.equal((await h.finished(id)).status, "filled");
    // Told again (ingest recovering it too): already done, the broker hears nothing.
    await h.execute(id, { recovering: true });
    await h.status();
    assert.equal(postCount(fake), 2);
    assert.equal(fake.orders.get(id)?.status, "filled");
    assert.equal(fake.orders.get(id)?.qty, "10");
    assert.deepEqual([tp.status, sl.status], ["canceled", "canceled"]);
    const rows = await h.orders(id);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.status, "filled");
    assert.deepEqual((await legRows(h, entry.id)).map((l) => l.status), ["canceled", "canceled"]);
    const canceled = await legsJournal(h);
    assert.deepEqual(canceled.map((j) => j.signal_id), [id]);
    assert.equal(await positionOf(h), 0);
  });
}

Deno.test("executor cancels exit legs left open on a flat position when it starts", async () => {
  const clock = new FakeClock();
  await using h = await startHarness({ clock });
  const entry = await h.run(BRACKET);
  await h.stop();
  // Closed behind the legs' back (a manual close, or a close before the leg rule existed).
  await h.db.query("UPDATE positions SET quantity = 0 WHERE account_id = $1 AND symbol = 'AAPL'", [
    h.accountId,
  ]);

  await h.start();
  await h.status(); // start() asked before init told the sweep; this asks after it
  const legs = await legRows(h, entry.id);
  assert.deepEqual(legs.map((l) => l.status), ["canceled", "canceled"]);
  for (const leg of legs) {
    assert.equal(leg.reason, "Canceled: the position is flat: the legs protect nothing");
  }
  const [canceled] = await legsJournal(h);
  assert.deepEqual([canceled?.signal_id, canceled?.order_id], [null, null]);
  assert.deepEqual(canceled?.data.legs.map((l) => l.order_id).sort(), legs.map((l) => l.id).sort());
  assert.equal((await h.status()).openOrders, 0);
  await pricesThroughOldExits(h, clock);
  assert.equal(await fillCount(h), 1);
  assert.equal(await positionOf(h), 0);
});

Deno.test("executor restarted with a paper bracket open keeps its links: one leg filling cancels the other", async () => {
  const clock = new FakeClock();
  await using h = await startHarness({ clock });
  const entry = await h.run(BRACKET);
  // A limit bracket entry still working: its legs open only when it fills.
  const working = await h.accept({
    ticker: "MSFT",
    action: "buy",
    quantity: 2,
    price: 400,
    order_type: "limit",
    limit_price: 390,
    take_profit: 420,
    stop_loss: 380,
  });
  await h.execute(working);
  await until(async () => (await getSignal(h.db, working))?.status === "placed", "MSFT to rest");
  await h.stop();

  await h.start(); // a fresh paper book, restored from the database
  assert.equal((await h.status()).openOrders, 3);
  assert.deepEqual((await legRows(h, entry.id)).map((l) => l.status), ["pending", "pending"]);
  await clock.advance(60_000);
  await h.actor.ref.tell({ type: "price", symbol: "AAPL", price: "112", at: clock.now() });
  await h.status();
  const legs = await legRows(h, entry.id);
  assert.deepEqual(legs.map((l) => [l.leg, l.status]), [
    ["take_profit", "filled"],
    ["stop_loss", "canceled"],
  ]);
  assert.match(legs[1]?.reason ?? "", /other leg of the bracket filled/);
  // Through the old stop: it never fills, no short opens.
  await h.actor.ref.tell({ type: "price", symbol: "AAPL", price: "90", at: clock.now() });
  await h.status();
  assert.equal(await positionOf(h), 0);
  assert.equal(await fillCount(h), 2);

  // The working entry fills after the restart and still opens its two legs.
  await h.actor.ref.tell({ type: "price", symbol: "MSFT", price: "389", at: clock.now() });
  assert.equal((await h.finished(working)).status, "filled");
  await h.status();
  const msft = await bracketRows(h, working);
  assert.deepEqual(msft.map((o) => [o.leg, o.status]), [
    ["entry", "filled"],
    ["take_profit", "pending"],
    ["stop_loss", "pending"],
  ]);
  assert.ok(msft.slice(1).every((o) => o.parentId === msft[0]?.id));
  assert.equal(await positionOf(h, "MSFT"), 2);
});

/** The entry a split flip wrote for `closeId`, once the close's order is written. */
async function entryOf(h: Harness, closeId: string): Promise<SignalRow> {
  const [row] = await h.db.query<{ id: string }>(
    "SELECT id FROM signals WHERE parent_signal_id = $1",
    [closeId],
  );
  assert.ok(row, `signal ${closeId} has no entry`);
  return (await getSignal(h.db, row.id))!;
}

Deno.test("executor splits a flip at Alpaca into a close and an entry that carries the bracket", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake });
  const { entry: long, tp, sl } = await alpacaBracket(h, fake);

  // Alpaca never flips a position in one order: the signal closes the long 10 (its legs first),
  // and its entry half opens the short 5 with the bracket the alert asked for.
  const flip = await h.run({
    ticker: "AAPL",
    action: "sell",
    quantity: 15,
    price: 104,
    take_profit: 96,
    stop_loss: 108,
  });
  assert.equal(flip.status, "filled");
  const entry = await entryOf(h, flip.id);
  assert.equal((await h.finished(entry.id)).status, "filled");
  assert.deepEqual(
    [entry.parentSignalId, entry.side, entry.quantity, entry.takeProfit, entry.stopLoss],
    [flip.id, "sell", "5", "96", "108"],
  );
  assert.equal(entry.receivedAt.getTime(), flip.receivedAt.getTime(), "the entry is as old");
  assert.deepEqual([tp.status, sl.status], ["canceled", "canceled"]);
  assert.deepEqual((await legRows(h, long.id)).map((l) => l.status), ["canceled", "canceled"]);

  const close = fake.orders.get(flip.id)!;
  assert.deepEqual(
    [close.side, close.qty, close.status, close.order_class, close.legs ?? null],
    ["sell", "10", "filled", "", null],
  );
  const short = fake.orders.get(entry.id)!;
  assert.deepEqual([short.side, short.qty, short.status, short.order_class], [
    "sell",
    "5",
    "filled",
    "bracket",
  ]);
  assert.deepEqual(short.legs!.map((l) => [l.type, l.limit_price ?? l.stop_price]), [
    ["limit", "96"],
    ["stop", "108"],
  ]);
  assert.equal(await positionOf(h), -5);
  assert.deepEqual((await h.orders(flip.id)).map((o) => [o.leg, o.side, o.quantity, o.status]), [
    ["entry", "sell", "10", "filled"],
  ]);

  const split = (await h.journal(flip.id)).filter((j) => j.event === "signal.split");
  assert.deepEqual(split.map((j) => j.data), [{
    entry_signal_id: entry.id,
    close_quantity: "10",
    entry_quantity: "5",
  }]);
  assert.deepEqual((await h.journal(entry.id)).map((j) => j.event).slice(0, 2), [
    "signal.accepted",
    "order.created",
  ]);
  assert.equal(eventsOf(h, "signal.received", entry.id).length, 1);
  assert.equal(eventsOf(h, "trade.closed").length, 1);
});

/**
 * Long 4 AAPL, then a limit flip (sell 10 at 103, above the market) that the fake leaves
 * resting: its close is placed, its entry waits.
 */
async function restingFlip(h: Harness): Promise<{ flipId: string; entry: SignalRow }> {
  assert.equal(
    (await h.run({ ticker: "AAPL", action: "buy", quantity: 4, price: 100 })).status,
    "filled",
  );
  const flipId = await h.accept({
    ticker: "AAPL",
    action: "sell",
    quantity: 10,
    order_type: "limit",
    limit_price: 103,
  });
  await h.execute(flipId);
  await until(async () => (await getSignal(h.db, flipId))?.status === "placed", "close placed");
  return { flipId, entry: await entryOf(h, flipId) };
}

Deno.test("a split flip's entry waits for its close, across a restart, and runs once", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake, pollIntervalMs: 10 });
  // A limit flip below the market: the close rests at the broker, so the entry must wait.
  const { flipId, entry } = await restingFlip(h);
  // Told to run early (ingest's sweep does so), it stays accepted: it cannot be claimed yet.
  await h.execute(entry.id);
  await h.status();
  assert.equal((await getSignal(h.db, entry.id))?.status, "accepted");
  assert.equal(fake.orders.has(entry.id), false);

  // A restart in between: the new executor knows the entry still waits.
  await h.stop();
  await h.start();
  fake.fillOrder(flipId);
  assert.equal((await h.finished(flipId)).status, "filled");
  await until(() => fake.orders.get(entry.id), "the entry's order at the broker");
  const short = fake.orders.get(entry.id)!;
  assert.deepEqual([short.side, short.qty, short.type, short.limit_price], [
    "sell",
    "6",
    "limit",
    "103",
  ]);
  // Another restart while the entry rests: it is reconciled as the order it is, not re-judged.
  await until(async () => (await getSignal(h.db, entry.id))?.status === "placed", "entry placed");
  await h.stop();
  await h.start();
  fake.fillOrder(entry.id);
  assert.equal((await h.finished(entry.id)).status, "filled");
  assert.equal(await positionOf(h), -6);
  const posts = fake.requests.filter((r) => r.method === "POST" && r.path === "/v2/orders");
  assert.equal(posts.length, 3, "the long, the close, the entry: each submitted once");
});

Deno.test("a split flip's entry is refused when its close is refused, and nothing is sent for it", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake });
  assert.equal(
    (await h.run({ ticker: "AAPL", action: "buy", quantity: 4, price: 100 })).status,
    "filled",
  );
  fake.faults.add({
    method: "POST",
    path: "/v2/orders",
    kind: "status",
    status: 403,
    body: { code: 40310000, message: "account is not allowed to short" },
  });
  const flip = await h.run({ ticker: "AAPL", action: "sell", quantity: 10, price: 100 });
  assert.equal(flip.status, "rejected");
  const entry = await entryOf(h, flip.id);
  assert.equal((await h.finished(entry.id)).status, "rejected");
  assert.equal(
    await reasonOf(h, entry.id),
    "Cannot open the new side: closing the position first ended rejected (Broker refused the order: account is not allowed to short), and 4 AAPL is still long; nothing was sent for this entry",
  );
  assert.equal(fake.orders.has(entry.id), false);
  const posts = fake.requests.filter((r) => r.method === "POST" && r.path === "/v2/orders");
  assert.equal(posts.length, 2, "the long and the refused close; nothing for the entry");
  assert.equal(await positionOf(h), 4);
});

Deno.test("a split flip's entry is refused when its close expires part filled, and the rest stays long", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake, pollIntervalMs: 10 });
  const { flipId, entry } = await restingFlip(h);
  // One of the four sold, then the day order expires at the close of the session.
  fake.fillOrder(flipId, "1", "103");
  const close = fake.orders.get(flipId)!;
  close.status = "expired";
  close.expired_at = close.updated_at = new Date().toISOString();

  assert.equal((await h.finished(flipId)).status, "canceled");
  assert.equal((await h.finished(entry.id)).status, "rejected");
  assert.equal(
    await reasonOf(h, entry.id),
    "Cannot open the new side: closing the position first ended canceled, and 3 AAPL is still long; nothing was sent for this entry",
  );

  assert.equal(fake.orders.has(entry.id), false);
  assert.equal(await positionOf(h), 3);
});

Deno.test("a split flip's entry is refused when its close fills after the signal grew too old", async () => {
  const clock = new FakeClock();
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" }, now: () => clock.now() });
  await using h = await startHarness({
    alpaca: fake,
    clock,
    risk: { max_signal_age_seconds: 30 },
    pollIntervalMs: 10,
  });
  const { flipId, entry } = await restingFlip(h);

  // The close fills a minute later: the trader is flat, and the short is not opened stale.
  await clock.advance(60_000);
  fake.fillOrder(flipId);
  assert.equal((await h.finished(flipId)).status, "filled");
  assert.equal((await h.finished(entry.id)).status, "rejected");
  assert.equal(await reasonOf(h, entry.id), "Signal is 60 s old; the maximum age is 30 s");
  assert.equal(fake.orders.has(entry.id), false);
  assert.equal(await positionOf(h), 0);
});

Deno.test("splitFlip: only an order that crosses zero; the close carries no bracket", () => {
  const request = (side: "buy" | "sell", quantity: string): OrderRequest => ({
    clientOrderId: "s1",
    symbol: "AAPL",
    side,
    quantity,
    type: "market",
    timeInForce: "day",
    takeProfit: { limitPrice: "90" },
    stopLoss: { stopPrice: "110" },
  });
  assert.equal(splitFlip(0, request("sell", "5")), null, "opening");
  assert.equal(splitFlip(10, request("sell", "10")), null, "a close");
  assert.equal(splitFlip(10, request("sell", "4")), null, "a reduction");
  assert.equal(splitFlip(10, request("buy", "4")), null, "adding");
  const split = splitFlip(10, request("sell", "15"))!;
  assert.deepEqual(split.close, {
    clientOrderId: "s1",
    symbol: "AAPL",
    side: "sell",
    quantity: "10",
    type: "market",
    timeInForce: "day",
  });
  assert.equal(split.entryQuantity, "5");
  assert.deepEqual(
    [
      splitFlip(-0.5, request("buy", "1.25"))?.close.quantity,
      splitFlip(-0.5, request("buy", "1.25"))?.entryQuantity,
    ],
    ["0.5", "0.75"],
  );
});

Deno.test("flipRefusal: only a broker that cannot flip, only an order that crosses zero", () => {
  const sell = (quantity: string) => ({ side: "sell" as const, quantity });
  const buy = (quantity: string) => ({ side: "buy" as const, quantity });
  assert.equal(flipRefusal("paper", "AAPL", 10, sell("15")), null);
  assert.equal(flipRefusal("alpaca", "AAPL", 0, sell("15")), null, "opening a short");
  assert.equal(flipRefusal("alpaca", "AAPL", 10, sell("10")), null, "a close");
  assert.equal(flipRefusal("alpaca", "AAPL", 10, sell("4")), null, "a reduction");
  assert.equal(flipRefusal("alpaca", "AAPL", 10, buy("4")), null, "adding");
  assert.match(
    flipRefusal("alpaca", "AAPL", 10, sell("10.5"))!,
    /long 10 AAPL and this sells 10.5/,
  );
  assert.match(
    flipRefusal("alpaca", "BTC/USD", -0.5, buy("1"))!,
    /short 0.5 BTC\/USD and this buys 1/,
  );
});

/** A trade made by hand at the fake Alpaca, outside trendedge: a market order filled at once. */
async function tradeAtAlpacaByHand(fake: FakeAlpaca, side: "buy" | "sell", qty: string) {
  const res = await fetch(`${fake.url}/v2/orders`, {
    method: "POST",
    headers: {
      "APCA-API-KEY-ID": ALPACA_KEY_ID,
      "APCA-API-SECRET-KEY": ALPACA_SECRET,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ symbol: "AAPL", qty, side, type: "market", time_in_force: "day" }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
}

async function positionJournal(h: Harness) {
  return await h.db.query<{ event: string; data: Record<string, unknown> }>(
    "SELECT event, data FROM journal WHERE account_id = $1 AND event LIKE 'position.%' ORDER BY id",
    [h.accountId],
  );
}

Deno.test("executor reports a position that differs at Alpaca once, and again when it matches (POSITIONS_RULE)", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" } });
  await using h = await startHarness({ alpaca: fake, comparePositionsMs: 20 });
  const compares = () => fake.requests.filter((r) => r.path === "/v2/positions").length;

  // Trading through trendedge: the record and the broker agree, nothing is reported.
  assert.equal(
    (await h.run({ ticker: "AAPL", action: "buy", quantity: 10, price: 100 })).status,
    "filled",
  );
  const before = compares();
  await until(() => compares() >= before + 3, "three more comparisons");
  assert.deepEqual([...await positionJournal(h)], []);

  // A trade by hand at Alpaca: told once, however many comparisons follow.
  await tradeAtAlpacaByHand(fake, "buy", "40");
  await until(async () => (await positionJournal(h)).length > 0, "the mismatch journaled");
  const seen = compares();
  await until(() => compares() >= seen + 3, "three more comparisons");
  assert.deepEqual((await positionJournal(h)).map((j) => [j.event, j.data]), [
    ["position.mismatch", { symbol: "AAPL", recorded: "10", at_broker: "50" }],
  ]);
  assert.deepEqual(eventsOf(h, "position.mismatch").map((e) => e.data), [
    { alias: h.alias, symbol: "AAPL", recorded: "10", atBroker: "50" },
  ]);
  const warned = h.lines.filter((l) =>
    l.message === "Position differs at the broker: signals act on the record"
  );
  assert.equal(warned.length, 1);
  assert.equal(warned[0]?.level, "WARNING");

  // Undone by hand: the positions agree again, and that is journaled once too.
  await tradeAtAlpacaByHand(fake, "sell", "40");
  await until(async () => (await positionJournal(h)).length > 1, "the match journaled");
  assert.deepEqual((await positionJournal(h)).map((j) => [j.event, j.data]), [
    ["position.mismatch", { symbol: "AAPL", recorded: "10", at_broker: "50" }],
    ["position.matched", { symbol: "AAPL", quantity: "10" }],
  ]);
  assert.equal(eventsOf(h, "position.mismatch").length, 1);
});

Deno.test("executor does not compare a position while an order on it is working", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "100" }, fillMarketOrders: false });
  await using h = await startHarness({ alpaca: fake, comparePositionsMs: 20 });
  const compares = () => fake.requests.filter((r) => r.path === "/v2/positions").length;
  const id = await h.accept({ ticker: "AAPL", action: "buy", quantity: 10 });
  await h.execute(id);
  await until(async () => (await getSignal(h.db, id))?.status === "placed", "the buy placed");
  // Alpaca fills it; the record learns it at the next poll (a minute here): the two differ
  // meanwhile, and that is no mismatch.
  fake.fillOrder(id, "10", "100");
  const seen = compares();
  await until(() => compares() >= seen + 3, "three more comparisons");
  assert.deepEqual([...await positionJournal(h)], []);
  assert.equal(await positionOf(h), 0);
});

Deno.test("executor reconciles a POST that the transport resent on a dropped keep-alive connection: one order", async () => {
  await using fake = startFakeAlpaca({ prices: { AAPL: "190" } });
  await using h = await startHarness({ alpaca: fake });
  // A first order, so that the next POST goes out on a connection the HTTP client reuses.
  assert.equal(
    (await h.run({ ticker: "AAPL", action: "buy", quantity: 1, price: 190 })).status,
    "filled",
  );
  fake.faults.add({ method: "POST", path: "/v2/orders", kind: "drop_after_record" });
  const seen = fake.requests.length;
  const signal = await h.run({ ticker: "AAPL", action: "buy", quantity: 2, price: 190 });
  assert.equal(signal.status, "filled");
  // However many times the request went out, Alpaca holds one order for the client order id, and
  // the record has one, filled, with Alpaca's id.
  assert.equal([...fake.orders.values()].filter((o) => o.client_order_id === signal.id).length, 1);
  const rows = await h.orders(signal.id);
  assert.deepEqual(rows.map((o) => [o.status, o.brokerOrderId]), [
    ["filled", fake.orders.get(signal.id)?.id],
  ]);
  assert.equal(await positionOf(h), 3);
  // Deno's HTTP client sends the POST again on a new connection when a reused one closes
  // unanswered; Alpaca answers the second one "client_order_id must be unique", and either way
  // the executor asks for the order by its client order id before doing anything else.
  const calls = fake.requests.slice(seen).map((r) => `${r.method} ${r.path}`);
  assert.deepEqual(calls.filter((c) => c !== "POST /v2/orders"), [
    "GET /v2/orders:by_client_order_id",
  ]);
  assert.equal(calls.at(-1), "GET /v2/orders:by_client_order_id");
});
