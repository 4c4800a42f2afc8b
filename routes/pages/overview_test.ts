import assert from "node:assert/strict";
import { memoryBreakerStore } from "../../db/breaker_store.ts";
import { createTestApp } from "../../tests/_app.ts";
import { createTestDb } from "../../tests/_db.ts";
import { accessTokenFor, insertTrader } from "../../tests/_fixtures.ts";

Deno.test("overview renders the account cards and positions as live islands with their data", async () => {
  await using tdb = await createTestDb("pglite");
  const breakers = memoryBreakerStore();
  await using test = createTestApp({ db: tdb.db, breakers });
  const ann = await insertTrader(tdb.db);
  const bob = await insertTrader(tdb.db);
  for (const t of [ann, bob]) {
    await tdb.db.query(
      `INSERT INTO positions (account_id, symbol, user_id, quantity, average_price, last_price,
         opened_at)
       VALUES ($1, $2, $3, 3, 100, 110, now())`,
      [t.accountId, t === ann ? "AAPL" : "MSFT", t.userId],
    );
  }
  const { token } = await accessTokenFor(tdb.db, { id: ann.userId, role: "trader" }, {
    secret: test.config.jwtSecret,
    now: test.clock.now(),
  });
  const res = await test.app.request("/", { headers: { Cookie: `te_access=${token}` } });
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /data-island="LiveAccounts"/);
  assert.match(html, /data-island="LivePositions"/);
  assert.match(html, /<section class="card stat" data-account="paper">/);
  assert.match(html, /data-open-positions="true">1</);
  assert.match(html, /data-unrealized="true">30\.00</);
  assert.match(html, /data-breaker="closed"/);
  assert.match(html, /data-position="paper:AAPL" data-quantity="3"/);
  assert.doesNotMatch(html, /MSFT/, "another trader's position is not shown");
  // The islands the browser test drives keep their markers.
  assert.match(html, /data-live-status=/);
  assert.match(html, /data-account="paper" data-kill-switch="off"/);
});
