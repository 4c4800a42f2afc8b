import assert from "node:assert/strict";
import type { DbEngine } from "./client.ts";
import { openPostgres } from "./postgres.ts";
import type { Delivery, Queue } from "./queue.ts";
import { createPgQueue } from "./queue_pg.ts";
import {
  eventLogger,
  Events,
  queueContract,
  type QueueStorage,
  recordInto,
} from "./_queue_contract.ts";
import { createTestDb } from "../tests/_db.ts";
import { startTcpProxy } from "../tests/_tcp_proxy.ts";

/** Short leases and polls, so that crash recovery and retries are quick in tests. */
const VISIBILITY_MS = 1_000;

/** A migrated test database; a restart closes the queues opened on it. */
async function pgStorage(engine: DbEngine): Promise<QueueStorage> {
  const t = await createTestDb(engine);
  let queues: Queue[] = [];

  async function restart() {
    await Promise.all(queues.map((queue) => queue.close(2_000)));
    queues = [];
  }

  return {
    workerArgs: t.url ? ["pg", t.url, String(VISIBILITY_MS)] : undefined,
    open({ log, backoffMs }) {
      const queue = createPgQueue(t.db, {
        log,
        backoffMs,
        visibilityTimeoutMs: VISIBILITY_MS,
        pollIntervalMs: 200,
      });
      queues.push(queue);
      return Promise.resolve(queue);
    },
    restart,
    async [Symbol.asyncDispose]() {
      await restart();
      await t[Symbol.asyncDispose]();
    },
  };
}

queueContract({ name: "pg queue on pglite", setup: () => pgStorage("pglite"), shared: true });
queueContract({
  name: "pg queue on postgres",
  setup: () => pgStorage("postgres"),
  shared: true,
  crashable: true,
});

Deno.test("pg queue keeps polling through a database outage and delivers afterwards", async () => {
  await using t = await createTestDb("postgres");
  await using proxy = startTcpProxy({ hostname: "127.0.0.1", port: Number(new URL(t.url!).port) });
  const url = new URL(t.url!);
  url.port = String(proxy.port);
  const db = openPostgres(url.toString(), { poolSize: 2, connectTimeoutMs: 1_000 });
  const { log, lines } = eventLogger();
  const queue = createPgQueue(db, { log, pollIntervalMs: 50, visibilityTimeoutMs: 1_000 });
  try {
    const deliveries = new Events<Delivery>();
    queue.handle("outage", recordInto(deliveries));
    queue.start();
    const before = await queue.enqueue({ type: "outage", payload: "before" });
    await deliveries.waitFor((d) => d.id === before, "a delivery before the outage");

    proxy.cut();
    await lines.waitFor(
      (l) => l.message === "Cannot poll the queue: the database is unavailable",
      "a warning about the failing poll",
    );
    // Enqueued straight into the database while this worker cannot reach it.
    const during = await createPgQueue(t.db, { log }).enqueue({
      type: "outage",
      payload: "during",
    });

    proxy.restore();
    await deliveries.waitFor((d) => d.id === during, "the delivery after the outage");
    await lines.waitFor((l) => l.message === "Queue polling recovered", "the recovery log line");
    const warning = lines.items.find((l) => String(l.message).startsWith("Cannot poll the queue"));
    assert.equal(warning?.level, "WARNING");
  } finally {
    await queue.close();
    await db.close();
  }
});
