/**
 * Exactly once through a crash: real server processes on real PostgreSQL, a fake Alpaca in this
 * process. The server is SIGKILLed in the middle of a burst, at the worst instant (Alpaca has
 * recorded an order whose answer the server has not seen yet), restarted on the same database,
 * and every unacknowledged alert is sent again, as TradingView would.
 */
import assert from "node:assert/strict";
import { insertTrader } from "./_fixtures.ts";
import { startFakeAlpaca } from "./fakes/alpaca.ts";
import { type ServerProcess, startServer } from "./_process.ts";
import {
  count,
  ENCRYPTION_KEY,
  eventually,
  freshDatabase,
  insertAlpacaAccount,
  JWT_SECRET,
  pool,
  postAlert,
  startAlpacaTap,
  tempDir,
} from "./_pipeline.ts";

const ALERTS = 500;
const KILL_AFTER_ACKS = 150;
const IN_FLIGHT = 20;
const UNFINISHED =
  "SELECT count(*)::int AS n FROM signals WHERE status IN ('accepted', 'executing', 'placed')";

Deno.test("a SIGKILL mid-burst loses no acknowledged signal and doubles no order at Alpaca", async () => {
  const started = performance.now();
  await using alpaca = startFakeAlpaca({ prices: { AAPL: "190.25" } });
  const kill: { armed: boolean; server?: ServerProcess; held?: string } = { armed: false };
  const killed = Promise.withResolvers<void>();
  // Each order's answer is held back a little after Alpaca recorded it: that keeps a backlog of
  // accepted signals and lets the kill land while Alpaca has an order the server does not know.
  await using tap = startAlpacaTap(alpaca.url, {
    holdMs: 15,
    onHold(clientOrderId) {
      if (kill.armed && kill.server && kill.held === undefined) {
        kill.held = clientOrderId;
        kill.server.child.kill("SIGKILL");
        killed.resolve();
      }
    },
  });
  await using data = await tempDir("trendedge-crash-");
  await using database = await freshDatabase();
  const { db } = database;
  const env = {
    DATA_DIR: data.path,
    DATABASE_URL: database.url,
    ENCRYPTION_KEY,
    JWT_SECRET,
    ALPACA_BASE_URL: tap.url,
    WEBHOOK_RATE_LIMIT_PER_MINUTE: "1000000",
    RATE_LIMIT_PER_MINUTE: "1000000",
    // TradingView's resends come well within this; past it a resend would be a new alert.
    DEDUP_WINDOW_SECONDS: "600",
  };

  let server = await startServer(env);
  kill.server = server;
  try {
    const trader = await insertTrader(db);
    await insertAlpacaAccount(db, trader.userId);
    const alerts = Array.from({ length: ALERTS }, (_, i) => ({
      key: trader.key,
      id: `crash-${i}`,
      ticker: "AAPL",
      action: "buy",
      quantity: 1,
      price: 190.25,
      account: "alpaca-paper",
    }));
    const indices = alerts.map((_, i) => i);

    // One alert first, so the executor and its Alpaca client are up before the burst.
    const warmUp = await postAlert(server.url, { ...alerts[0], id: "warm-up" });
    assert.equal(warmUp.status, 202, JSON.stringify(warmUp.body));
    await eventually(
      "the warm-up alert is filled",
      async () => (await count(db, UNFINISHED)) === 0,
    );

    // The burst: 20 in flight; the kill comes with the first held answer after 150 acks.
    const acked = new Map<number, string>();
    const answered: number[] = [];

    await pool(indices, IN_FLIGHT, async (i) => {
      try {
        const res = await postAlert(server.url, alerts[i], { timeoutMs: 20_000 });
        answered.push(res.status);
        if (res.status === 202) acked.set(i, res.body.signal_id);
        if (acked.size >= KILL_AFTER_ACKS) kill.armed = true;
      } catch {
        // in flight when the process died: never acknowledged
      }
    }, () => kill.held === undefined);
    // Alpaca answers the backlog's next order soon, if the burst outran it.
    await within(killed.promise, 30_000, "the kill");
    const status = await server.status;
    assert.equal(status.signal, "SIGKILL");
    assert.deepEqual([...new Set(answered)], [202], "before the kill every alert was accepted");
    assert.ok(acked.size >= KILL_AFTER_ACKS, `${acked.size} acknowledged before the kill`);
    const held = kill.held;
    assert.ok(held, "the kill landed while Alpaca held an order the server had not heard of");
    await server[Symbol.asyncDispose]();

    // Restart on the same database and data; recovery finishes what was left.
    server = await startServer(env);
    await eventually(
      "recovery finishes every unfinished signal",
      async () => (await count(db, UNFINISHED)) === 0,
      60_000,
    );
    const recovering = server.lines.find((l) => l.message === "Recovering unfinished signals");
    assert.ok(recovering, "the restarted server logged its recovery");
    assert.ok(Number(recovering.count) > 0);
    assert.ok(tap.lookups.includes(held), "the ambiguous order was looked up, not resubmitted");

    // TradingView resends what was never acknowledged.
    const accepted = new Map(acked);
    const resent: number[] = [];
    await pool(indices.filter((i) => !acked.has(i)), IN_FLIGHT, async (i) => {
      const res = await postAlert(server.url, alerts[i], { timeoutMs: 20_000 });
      resent.push(res.status);
      assert.ok(res.status === 202 || res.status === 200, JSON.stringify(res.body));
      if (res.status === 200) assert.equal(res.body.duplicate, true);
      accepted.set(i, res.body.signal_id);
    });
    assert.equal(resent.length, ALERTS - acked.size);
    await eventually(
      "every resent signal is finished",
      async () => (await count(db, UNFINISHED)) === 0,
      60_000,
    );

    // Exactly once, end to end.
    accepted.set(-1, warmUp.body.signal_id);
    const ids = new Set(accepted.values());
    assert.equal(ids.size, ALERTS + 1, "one signal per distinct alert");
    const signals = await db.query<{ id: string; status: string; reason: string | null }>(
      "SELECT id, status, reason FROM signals",
    );
    assert.equal(signals.length, ids.size, "no signal stored twice");
    const notFilled = signals.filter((s) => s.status !== "filled");
    assert.deepEqual(notFilled, [], "every signal ends filled");
    for (const s of signals) assert.ok(ids.has(s.id), `signal ${s.id} was acknowledged`);

    const orders = await db.query<{ client_order_id: string; signal_id: string; status: string }>(
      "SELECT client_order_id, signal_id, status FROM orders",
    );
    const ordersBySignal = Map.groupBy(orders, (o) => o.signal_id);
    for (const id of ids) {
      const rows = ordersBySignal.get(id) ?? [];
      assert.equal(rows.length, 1, `signal ${id} has exactly one order row`);
      assert.equal(rows[0]!.client_order_id, id);
      assert.equal(rows[0]!.status, "filled");
    }
    assert.equal(orders.length, ids.size);

    assert.equal(alpaca.orders.size, ids.size, "Alpaca holds one order per accepted signal");
    for (const id of ids) {
      assert.equal(alpaca.orders.get(id)?.status, "filled", `Alpaca filled ${id}`);
    }
    const postsByOrder = Map.groupBy(tap.posts, (p) => p.clientOrderId);
    for (const [id, posts] of postsByOrder) {
      assert.equal(posts.filter((p) => p.status === 200).length, 1, `one successful POST of ${id}`);
      assert.equal(posts.length, 1, `${id} was never submitted twice`);
    }
    assert.equal(postsByOrder.size, ids.size);
    assert.equal(postsByOrder.get(held)?.length, 1, "the held order was not posted again");

    const elapsed = performance.now() - started;
    assert.ok(elapsed < 90_000, `the crash test took ${Math.round(elapsed)} ms`);
  } finally {
    await server[Symbol.asyncDispose]();
  }
});

/** Resolves with `promise`, or fails after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
