import assert from "node:assert/strict";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { DbUnavailableError, isDbUnavailable } from "./client.ts";
import { openPostgres } from "./postgres.ts";

for (const engine of ENGINES) {
  Deno.test(`${engine} returns the same JavaScript types as the other engine`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const [row] = await t.db.query(
      `SELECT 1::int4 AS i4, 9007199254740991::int8 AS i8, 12.50::numeric AS num, true AS b,
              '2026-02-11T10:30:00Z'::timestamptz AS ts, '{"a":[1,"x"]}'::jsonb AS j,
              ARRAY['a','b'] AS arr, '\\x0102'::bytea AS bytes, NULL::text AS nothing, $1::text AS param`,
      ["it's"],
    );
    assert.ok(row);
    assert.equal(row.i4, 1);
    assert.equal(row.i8, 9007199254740991, "int8 is a number on both engines");
    assert.equal(row.num, "12.50", "numeric stays an exact string (money)");
    assert.equal(row.b, true);
    assert.ok(row.ts instanceof Date && row.ts.toISOString() === "2026-02-11T10:30:00.000Z");
    assert.deepEqual(row.j, { a: [1, "x"] });
    assert.deepEqual(row.arr, ["a", "b"]);
    assert.ok(row.bytes instanceof Uint8Array);
    assert.deepEqual([...(row.bytes as Uint8Array)], [1, 2]);
    assert.equal(row.nothing, null);
    assert.equal(row.param, "it's");
  });

  Deno.test(`${engine} transactions commit on success and roll back on a throw`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    await t.db.query("CREATE TABLE t (id int PRIMARY KEY)");
    await t.db.transaction(async (tx) => {
      await tx.query("INSERT INTO t VALUES (1)");
      await tx.query("INSERT INTO t VALUES (2)");
    });
    await assert.rejects(
      t.db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (3)");
        throw new Error("abort");
      }),
      /abort/,
    );
    await assert.rejects(
      t.db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (4)");
        await tx.query("INSERT INTO t VALUES (1)"); // unique violation
      }),
      (e: unknown) => (e as { code?: string }).code === "23505",
    );
    const rows = await t.db.query<{ id: number }>("SELECT id FROM t ORDER BY id");
    assert.deepEqual(rows.map((r) => r.id), [1, 2]);
  });

  Deno.test(`${engine} delivers NOTIFY payloads to listeners until they unlisten`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const got: string[] = [];
    const first = Promise.withResolvers<void>();
    const unlisten = await t.db.listen("trendedge_test", (payload) => {
      got.push(payload);
      first.resolve();
    });
    await t.db.query("SELECT pg_notify('trendedge_test', $1)", ["hello"]);
    await first.promise;
    await unlisten();
    await t.db.query("SELECT pg_notify('trendedge_test', 'after')");
    await t.db.ping(1000); // a round trip after the NOTIFY: it would have arrived by now
    assert.deepEqual(got, ["hello"]);
  });

  Deno.test(`${engine} ping measures a round trip`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const ms = await t.db.ping(1000);
    assert.ok(ms >= 0 && ms < 1000);
  });
}

Deno.test("postgres connection failures are classified as unavailable, query errors are not", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const db = openPostgres(`postgres://postgres@127.0.0.1:${port}/none`, { connectTimeoutMs: 1000 });
  try {
    const error = await db.query("SELECT 1").then(() => undefined, (e) => e);
    assert.ok(error, "a refused connection fails the query");
    assert.equal(isDbUnavailable(error), true, String(error));
    await assert.rejects(db.ping(500));
  } finally {
    await db.close();
  }
  await using t = await createTestDb("postgres", { migrate: false });
  const syntax = await t.db.query("SELEC 1").then(() => undefined, (e) => e);
  assert.equal(isDbUnavailable(syntax), false);
  assert.equal(isDbUnavailable(new DbUnavailableError("x")), true);
  assert.equal(isDbUnavailable(new Error("wrapped", { cause: { code: "57P01" } })), true);
});

Deno.test("postgres statement timeout cancels a runaway query", async () => {
  await using t = await createTestDb("postgres", { migrate: false });
  const db = openPostgres(t.url!, { statementTimeoutMs: 200, poolSize: 1 });
  try {
    await assert.rejects(
      db.query("SELECT pg_sleep(5)"),
      (e: unknown) => (e as { code?: string }).code === "57014",
    );
  } finally {
    await db.close();
  }
});

for (const engine of ENGINES) {
  Deno.test(`${engine} stores JSON passed as text and cast with ::text::jsonb unchanged`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const value = {
      details: [{ field: "ticker", message: "required" }],
      n: 1.5,
      s: 'it\'s "quoted"',
    };
    const [row] = await t.db.query<{ j: unknown }>("SELECT $1::text::jsonb AS j", [
      JSON.stringify(value),
    ]);
    assert.deepEqual(row?.j, value);
  });
}

Deno.test("a second opener of the same embedded data dir is refused until the first closes", async () => {
  const { openPglite } = await import("./pglite.ts");
  const dir = await Deno.makeTempDir({ prefix: "trendedge-lock-" });
  try {
    const first = await openPglite({ dataDir: `${dir}/pglite` });
    await assert.rejects(
      openPglite({ dataDir: `${dir}/pglite` }),
      /another trendedge process is using it/,
    );
    await first.close();
    const second = await openPglite({ dataDir: `${dir}/pglite` });
    assert.equal((await second.query<{ n: number }>("SELECT 1 AS n"))[0]?.n, 1);
    await second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("postgres queries and transactions fail as unavailable at their deadline when connections are accepted then dropped", async () => {
  const { startTcpProxy } = await import("../tests/_tcp_proxy.ts");
  await using t = await createTestDb("postgres", { migrate: false });
  const target = new URL(t.url!);
  await using proxy = startTcpProxy({
    hostname: target.hostname,
    port: Number(target.port || 5432),
  });
  const via = new URL(t.url!);
  via.port = String(proxy.port);
  const db = openPostgres(via.toString(), {
    poolSize: 1,
    queryTimeoutMs: 800,
    transactionTimeoutMs: 800,
  });
  try {
    assert.equal((await db.query<{ n: number }>("SELECT 1 AS n"))[0]?.n, 1);
    proxy.cut();
    const started = performance.now();
    const error = await db.query("SELECT 1").then(() => undefined, (e) => e);
    assert.ok(isDbUnavailable(error), String(error));
    assert.ok(
      performance.now() - started < 5_000,
      "it failed at its deadline, not after a long hang",
    );
    const txError = await db.transaction((tx) => tx.query("SELECT 1")).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(isDbUnavailable(txError), String(txError));
    proxy.restore();
    let back = false;
    for (let i = 0; i < 50 && !back; i++) {
      back = await db.query("SELECT 1").then(() => true, () => false);
    }
    assert.ok(back, "queries succeed again once the database is reachable");
  } finally {
    await db.close(1000);
  }
});
