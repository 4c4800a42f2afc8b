/**
 * Several instances on one PostgreSQL (CLUSTER=true): webhooks spread over two real processes
 * execute exactly once, each account's executor runs on one instance, a `kill -9` of the owner
 * moves its accounts to the survivor, and events published on one instance reach the other.
 */
import assert from "node:assert/strict";
import type { PipelineEvent } from "../lib/events.ts";
import { insertTrader, type TraderFixture } from "./_fixtures.ts";
import {
  alert,
  count,
  ENCRYPTION_KEY,
  eventually,
  freshDatabase,
  JWT_SECRET,
  postAlert,
  startInProcess,
  tempDir,
} from "./_pipeline.ts";
import { startServer } from "./_process.ts";

const FILLED = "SELECT count(*)::int AS n FROM signals WHERE status = 'filled'";

async function instance(url: string, id: string, dataDir: string) {
  return await startServer({
    DATABASE_URL: url,
    DATABASE_POOL_SIZE: "4",
    CLUSTER: "true",
    INSTANCE_ID: id,
    DATA_DIR: dataDir,
    JWT_SECRET,
    ENCRYPTION_KEY,
    LOG_LEVEL: "info",
  });
}

Deno.test("two instances on one database: every signal once, one executor per account, takeover after kill -9", async () => {
  await using database = await freshDatabase();
  const { db } = database;
  await using dirA = await tempDir("trendedge-a-");
  await using dirB = await tempDir("trendedge-b-");
  await using a = await instance(database.url, "instance-a", dirA.path);
  await using b = await instance(database.url, "instance-b", dirB.path);

  const traders: TraderFixture[] = [];
  for (let i = 0; i < 4; i++) traders.push(await insertTrader(db));

  // 40 signals, each account's alerts alternating between the instances, all at once.
  const posts: Promise<{ status: number }>[] = [];
  for (let i = 0; i < 40; i++) {
    const trader = traders[i % traders.length]!;
    const target = i % 2 === 0 ? a.url : b.url;
    posts.push(postAlert(target, alert(trader.key, { id: `s-${i}`, price: 100 + i })));
  }
  const answers = await Promise.all(posts);
  assert.deepEqual(answers.map((x) => x.status), Array(40).fill(202));
  await eventually("every signal filled", async () => (await count(db, FILLED)) === 40, 30_000);
  assert.equal(await count(db, "SELECT count(*)::int AS n FROM orders"), 40);
  assert.equal(
    await count(
      db,
      "SELECT count(*)::int AS n FROM (SELECT signal_id FROM orders GROUP BY signal_id HAVING count(*) > 1) d",
    ),
    0,
    "no signal has two orders",
  );
  const leases = await db.query<{ name: string; owner: string }>(
    "SELECT name, owner FROM leases WHERE name LIKE 'executor:%' ORDER BY name",
  );
  assert.deepEqual(
    leases.map((l) => l.name).sort(),
    traders.map((t) => `executor:${t.accountId}`).sort(),
    "one lease per account",
  );
  for (const lease of leases) assert.ok(["instance-a", "instance-b"].includes(lease.owner));

  // Kill the owner of the first account without any chance to clean up.
  const owner = leases.find((l) => l.name === `executor:${traders[0]!.accountId}`)!.owner;
  const [victim, survivor] = owner === "instance-a" ? [a, b] : [b, a];
  const survivorId = owner === "instance-a" ? "instance-b" : "instance-a";
  victim.child.kill("SIGKILL");
  await victim.status;

  const killedAt = Date.now();
  const after: string[] = [];
  for (let i = 0; i < 4; i++) {
    const answer = await postAlert(
      survivor.url,
      alert(traders[0]!.key, { id: `after-${i}`, price: 200 + i }),
    );
    assert.equal(answer.status, 202);
    after.push((answer as { body: { signal_id: string } }).body.signal_id);
  }
  await eventually(
    "the survivor takes the account over and fills what arrived after the kill",
    async () =>
      (await count(
        db,
        "SELECT count(*)::int AS n FROM signals WHERE id = ANY($1::uuid[]) AND status = 'filled'",
        [after],
      )) === after.length,
    20_000,
  );
  const tookMs = Date.now() - killedAt;
  assert.ok(tookMs < 20_000, `takeover took ${tookMs} ms`);
  const [moved] = await db.query<{ owner: string }>("SELECT owner FROM leases WHERE name = $1", [
    `executor:${traders[0]!.accountId}`,
  ]);
  assert.equal(moved?.owner, survivorId);
  assert.equal(await count(db, "SELECT count(*)::int AS n FROM orders"), 44);
  assert.equal(
    await count(db, "SELECT count(*)::int AS n FROM signals WHERE status <> 'filled'"),
    0,
    "nothing lost",
  );
  assert.ok(
    survivor.lines.some((l) => l.message === "Cluster mode" && l.instance_id === survivorId),
  );
});

Deno.test("events published on one instance reach the other's bus, once, marked with their origin", async () => {
  await using database = await freshDatabase();
  const env = { DATABASE_URL: database.url, CLUSTER: "true", DATABASE_POOL_SIZE: "3" };
  await using first = await startInProcess({ ...env, INSTANCE_ID: "first" });
  await using second = await startInProcess({ ...env, INSTANCE_ID: "second" });
  const seen: PipelineEvent[] = [];
  const unsubscribe = second.runtime.bus.subscribe((e) => seen.push(e));
  try {
    const trader = await insertTrader(database.db);
    // Make "first" own the account, so the whole run happens there.
    const warm = await postAlert(first.url, alert(trader.key, { id: "warm" }));
    assert.equal(warm.status, 202);
    await eventually(
      "the other instance sees the fill",
      () =>
        Promise.resolve(
          seen.some((e) =>
            e.type === "trade.updated" && e.signalId === warm.body.signal_id &&
            e.data.status === "filled"
          ),
        ),
    );
    const remote = seen.filter((e) => e.signalId === warm.body.signal_id);
    assert.ok(remote.every((e) => e.origin === "first"), "marked with the instance of origin");
    const received = remote.filter((e) => e.type === "signal.received");
    assert.equal(received.length, 1, "delivered once");
  } finally {
    unsubscribe();
  }
});
