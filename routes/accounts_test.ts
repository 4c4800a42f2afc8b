import assert from "node:assert/strict";
import { memoryBreakerStore } from "../db/breaker_store.ts";
import { createTestApp } from "../tests/_app.ts";
import { createTestDb } from "../tests/_db.ts";
import { accessTokenFor, insertTrader } from "../tests/_fixtures.ts";

Deno.test("GET /api/v1/accounts shows each of the caller's accounts with its kill switch and breaker state", async () => {
  await using t = await createTestDb("pglite");
  const mine = await insertTrader(t.db);
  await insertTrader(t.db); // another user, whose account must not show
  const breakers = memoryBreakerStore();
  await using test = createTestApp({ db: t.db, breakers });
  // The executor stores the breaker's snapshot on every change; open it for 10 minutes.
  await breakers.save(mine.accountId, { failures: [], openUntil: test.clock.now() + 600_000 });
  await t.db.query("UPDATE broker_accounts SET kill_switch = true WHERE id = $1", [mine.accountId]);
  const { token } = await accessTokenFor(t.db, { id: mine.userId, role: "trader" }, {
    secret: test.config.jwtSecret,
    now: test.clock.now(),
  });
  const get = async () => {
    const res = await test.app.request("/api/v1/accounts", {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    return (await res.json()).data as Array<Record<string, unknown>>;
  };
  const [account, ...others] = await get();
  assert.deepEqual(others, [], "another user's account never shows");
  assert.deepEqual(
    {
      alias: account?.alias,
      broker: account?.broker,
      kill: account?.kill_switch,
      breaker: account?.breaker,
    },
    { alias: "paper", broker: "paper", kill: true, breaker: "open" },
  );
  await test.clock.advance(600_000);
  assert.equal((await get())[0]?.breaker, "half_open", "after the cooldown one probe may pass");
  assert.equal((await test.app.request("/api/v1/accounts")).status, 401);
});
