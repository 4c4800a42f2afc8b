import assert from "node:assert/strict";
import { FakeClock } from "../lib/clock.ts";
import { EventBus, type PipelineEvent } from "../lib/events.ts";
import { memoryLogger } from "../lib/log.ts";
import { createTestDb } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import type { ActorContext } from "./actor.ts";
import type { ExecutorDeps } from "./executor.ts";
import { ExecutorRegistry } from "./executors.ts";
import { ingestBehavior, type IngestCommand } from "./ingest.ts";

const DAY_MS = 86_400_000;

Deno.test("the ingest sweep warns once, by log and bus, about a webhook key that expires within a week", async () => {
  await using t = await createTestDb("pglite");
  const clock = new FakeClock();
  const { log, lines } = memoryLogger("debug");
  const bus = new EventBus(log);
  const events: PipelineEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const trader = await insertTrader(t.db);
  const expiresAt = new Date(clock.now() + 8 * DAY_MS);
  await t.db.query("UPDATE webhook_keys SET expires_at = $2 WHERE id = $1", [
    trader.keyId,
    expiresAt,
  ]);
  // There are no signals here: the registry is never asked for an executor.
  const registry = new ExecutorRegistry({ deps: {} as ExecutorDeps, log });
  const behavior = ingestBehavior({ db: t.db, clock, registry, bus, sweepIntervalMs: 0 });
  const ctx: ActorContext<IngestCommand> = {
    name: "ingest",
    log,
    clock,
    self: { name: "ingest", tell: () => Promise.resolve(), ask: () => Promise.reject() },
  };
  let state = await behavior.init(ctx);
  const sweep = async () => {
    state = await behavior.receive(state, { type: "sweep" }, ctx);
  };

  await sweep();
  assert.deepEqual(events, [], "eight days left: no warning yet");
  await clock.advance(DAY_MS);
  await sweep();
  await sweep();
  const [{ prefix }] = await t.db.query<{ prefix: string }>(
    "SELECT prefix FROM webhook_keys WHERE id = $1",
    [trader.keyId],
  ) as [{ prefix: string }];
  assert.deepEqual(events, [{
    type: "webhook_key.expiring",
    userId: trader.userId,
    at: new Date(clock.now()).toISOString(),
    data: { key_id: trader.keyId, name: "test", prefix, expires_at: expiresAt.toISOString() },
  }], "one warning across sweeps");
  const warnings = lines.filter((l) => l.message === "Webhook key expires soon");
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.level, "WARNING");
  assert.equal(warnings[0]!.key_id, trader.keyId);
  assert.equal(warnings[0]!.key_prefix, prefix);
  assert.equal(warnings[0]!.user_id, trader.userId);
  await behavior.stop?.(state, ctx);
});
