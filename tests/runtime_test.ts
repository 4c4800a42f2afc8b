/** The whole runtime in-process: boot, readiness through an outage, graceful shutdown, restarts. */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { memoryLogger } from "../lib/log.ts";
import { start } from "../main.ts";
import { createPostgresDatabase } from "./_db.ts";
import { startTcpProxy } from "./_tcp_proxy.ts";

async function tempDataDir(): Promise<string & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "trendedge-runtime-" });
  return Object.assign(dir, {
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  }) as unknown as string & AsyncDisposable;
}

/** Polls `fn` until it returns true; fails after `ms`. */
async function eventually(what: string, fn: () => Promise<boolean>, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

function testConfig(dataDir: string, env: Record<string, string> = {}) {
  return loadConfig({
    APP_ENV: "test",
    HOST: "127.0.0.1",
    PORT: "0",
    DATA_DIR: dataDir,
    SHUTDOWN_TIMEOUT_MS: "5000",
    ...env,
  });
}

Deno.test("readiness turns 503 degraded while PostgreSQL is unreachable and 200 again when it returns, without a restart", async () => {
  await using data = await tempDataDir();
  const database = await createPostgresDatabase();
  const pg = new URL(database.url);
  await using proxy = startTcpProxy({ hostname: pg.hostname, port: Number(pg.port || 5432) });
  const url = new URL(database.url);
  url.port = String(proxy.port);
  const { log } = memoryLogger("warning");
  const runtime = await start(
    testConfig(String(data), { DATABASE_URL: url.toString(), DATABASE_POOL_SIZE: "2" }),
    { log },
  );
  try {
    const ready = async () => {
      const res = await fetch(`${runtime.url}/health/ready`);
      return { status: res.status, body: await res.json() };
    };
    const first = await ready();
    assert.equal(first.status, 200);
    assert.equal(first.body.checks.database.status, "ok");
    assert.equal(first.body.checks.kv.status, "ok");
    assert.equal(first.body.checks.actors.status, "ok");

    proxy.cut();
    await eventually("readiness degraded", async () => (await ready()).status === 503);
    const degraded = await ready();
    assert.equal(degraded.body.status, "degraded");
    assert.equal(degraded.body.checks.database.status, "error");
    assert.equal(degraded.body.checks.kv.status, "ok", "only the failing part is named");
    assert.equal((await fetch(`${runtime.url}/health`)).status, 200, "liveness stays up");

    proxy.restore();
    await eventually("readiness recovered", async () => (await ready()).status === 200);
  } finally {
    assert.equal(await runtime.shutdown("test over"), true);
    await database.drop();
  }
});

Deno.test("graceful shutdown lets an in-flight request finish, then refuses new connections", async () => {
  await using data = await tempDataDir();
  const { log, lines } = memoryLogger("info");
  const runtime = await start(testConfig(String(data)), { log });
  const entered = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  runtime.app.get("/api/v1/slow", async (c) => {
    entered.resolve();
    await release.promise;
    return c.json({ finished: true });
  });
  const inFlight = fetch(`${runtime.url}/api/v1/slow`);
  await entered.promise;
  const stopping = runtime.shutdown("test");
  // The request is still running while shutdown waits for it.
  setTimeout(() => release.resolve(), 200);
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { finished: true });
  assert.equal(await stopping, true);
  await runtime.done;
  await assert.rejects(fetch(`${runtime.url}/health`));
  const stopped = lines.find((l) => l.message === "Stopped");
  assert.equal(stopped?.clean, true);
});

Deno.test("the embedded database keeps its data under DATA_DIR across restarts and migrates once", async () => {
  await using data = await tempDataDir();
  const first = await start(testConfig(String(data)), { log: memoryLogger("info").log });
  await first.db.query(
    "INSERT INTO queue_dead_letters (id, type, payload, attempts, error, created_at) VALUES ($1, 'x', '{}', 1, 'e', now())",
    [
      crypto.randomUUID(),
    ],
  );
  await first.shutdown("restart");
  const { log, lines } = memoryLogger("info");
  const second = await start(testConfig(String(data)), { log });
  try {
    const [row] = await second.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM queue_dead_letters",
    );
    assert.equal(row?.n, 1);
    assert.ok(!lines.some((l) => l.message === "Migration applied"), "nothing re-applied");
    assert.equal(second.db.engine, "pglite");
  } finally {
    await second.shutdown("test over");
  }
});

Deno.test("start refuses to run on a schema with pending migrations when it must not migrate", async () => {
  await using data = await tempDataDir();
  const database = await createPostgresDatabase();
  try {
    await assert.rejects(
      start(testConfig(String(data), { DATABASE_URL: database.url, MIGRATE_ON_START: "false" }), {
        log: memoryLogger("info").log,
      }),
      /Cannot start: \d+ migration\(s\) pending .*deno task migrate up/,
    );
  } finally {
    await database.drop();
  }
});

Deno.test("start gives up loudly when the database never answers", async () => {
  await using data = await tempDataDir();
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  await assert.rejects(
    start(testConfig(String(data), { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` }), {
      log: memoryLogger("info").log,
      databaseWaitMs: 1500,
    }),
    /Cannot start: the database does not answer/,
  );
});
