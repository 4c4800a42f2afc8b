/**
 * The executor registry over a real test database and real executors on the paper broker:
 * `reload` retires an executor so its successor reads the changed account, without losing the
 * signals the old one had already been told.
 */
import assert from "node:assert/strict";
import { PaperBroker, PaperSettingsSchema } from "../brokers/paper.ts";
import { memoryBreakerStore } from "../db/breaker_store.ts";
import type { ExecutorAccount } from "../db/executions.ts";
import { createKvQueue } from "../db/queue_kv.ts";
import { acceptSignal, getSignal } from "../db/signals.ts";
import { systemClock } from "../lib/clock.ts";
import { EventBus } from "../lib/events.ts";
import { uuidv7 } from "../lib/ids.ts";
import { memoryLogger } from "../lib/log.ts";
import { validateSignal } from "../lib/signal.ts";
import { createTestDb } from "../tests/_db.ts";
import { insertTrader, type TraderFixture } from "../tests/_fixtures.ts";
import { ActorStoppedError } from "./actor.ts";
import type { ExecutorStatus } from "./executor.ts";
import { ExecutorRegistry } from "./executors.ts";
import { Supervisor } from "./supervisor.ts";

/** A registry under a running supervisor; `built` records the account row of every broker. */
async function startRegistry() {
  const t = await createTestDb("pglite");
  const { log, lines } = memoryLogger("debug");
  const kv = await Deno.openKv(":memory:");
  const queue = createKvQueue(kv, { log });
  const built: ExecutorAccount[] = [];
  const registry = new ExecutorRegistry({
    deps: {
      db: t.db,
      bus: new EventBus(log),
      queue,
      clock: systemClock,
      breakers: memoryBreakerStore(),
      createBroker: (account) => {
        built.push(account);
        return Promise.resolve(
          new PaperBroker({ settings: PaperSettingsSchema.parse({}), clock: systemClock }),
        );
      },
      pollIntervalMs: 60_000,
    },
    log,
    shutdownMs: 5_000,
  });
  const supervisor = new Supervisor({
    name: "executors",
    intensity: 10,
    periodMs: 60_000,
    log,
  });
  registry.attach(supervisor);
  await supervisor.start([]);
  const trader = await insertTrader(t.db);
  return {
    db: t.db,
    registry,
    built,
    lines,
    trader,
    async [Symbol.asyncDispose]() {
      await supervisor.stop(5_000);
      await queue.close(1_000);
      kv.close();
      await t[Symbol.asyncDispose]();
    },
  };
}

async function accept(
  db: Parameters<typeof acceptSignal>[0],
  trader: TraderFixture,
  i: number,
): Promise<string> {
  const validation = validateSignal({ ticker: "AAPL", action: "buy", quantity: 1, price: 100 });
  if (!validation.ok) assert.fail(JSON.stringify(validation.problems));
  const id = uuidv7();
  const result = await acceptSignal(
    db,
    {
      id,
      userId: trader.userId,
      keyId: trader.keyId,
      accountId: trader.accountId,
      source: "tradingview",
      rawBody: "{}",
      receivedAt: new Date(),
    },
    validation.signal,
    { dedupKey: `reload:${i}:${id}`, windowMs: 60_000, symbol: "AAPL" },
  );
  return result.signalId;
}

function status(ref: NonNullable<Awaited<ReturnType<ExecutorRegistry["ensure"]>>>) {
  return ref.ask<ExecutorStatus>((reply) => ({ type: "status", reply }), { timeoutMs: 5_000 });
}

Deno.test("registry reload retires the executor so the next ensure builds it from the changed account", async () => {
  await using r = await startRegistry();
  const { accountId } = r.trader;
  const first = await r.registry.ensure(accountId);
  assert.ok(first);
  await status(first);
  assert.equal(await r.registry.ensure(accountId), first, "a running executor is reused");
  assert.deepEqual(r.built.map((a) => a.risk), [{}]);

  await r.db.query(
    `UPDATE broker_accounts SET risk = '{"max_order_quantity": 5}' WHERE id = $1`,
    [accountId],
  );
  const reloading = r.registry.reload(accountId);
  // At once, before the old one has even stopped, ensure no longer hands it out.
  const second = await r.registry.ensure(accountId);
  await reloading;
  assert.ok(second);
  assert.notEqual(second, first);
  await status(second);
  assert.deepEqual(r.built.map((a) => a.risk), [{}, { max_order_quantity: 5 }]);
  await assert.rejects(status(first), ActorStoppedError, "the old executor is gone");
  assert.ok(r.lines.some((l) => l.message === "Executor retired to pick up a changed account"));

  // Nothing running: reload is a no-op, and the next ensure starts one as usual.
  await r.registry.reload(accountId);
  await r.registry.reload(accountId);
  const third = await r.registry.ensure(accountId);
  assert.ok(third);
  await status(third);
  assert.equal(r.built.length, 3);
  await r.registry.reload(uuidv7()); // an account that never ran

  // Once the account is deleted, a reload leaves no executor and ensure finds none.
  await r.db.query("DELETE FROM broker_accounts WHERE id = $1", [accountId]);
  await r.registry.reload(accountId);
  assert.equal(await r.registry.ensure(accountId), null);
});

Deno.test("registry reload lets the old executor finish every signal it was told, batched ones included", async () => {
  await using r = await startRegistry();
  const executor = await r.registry.ensure(r.trader.accountId);
  assert.ok(executor);
  await status(executor);
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push(await accept(r.db, r.trader, i));
  // Fresh paper signals are set aside for a batch; the retirement must still run them.
  for (const signalId of ids) {
    await executor.tell({ type: "execute", signalId, recovering: false });
  }
  await r.registry.reload(r.trader.accountId);
  for (const id of ids) {
    assert.equal((await getSignal(r.db, id))?.status, "filled", `signal ${id} was filled`);
  }
});
