import assert from "node:assert/strict";
import type { Queryable } from "../../db/client.ts";
import { memoryBreakerStore } from "../../db/breaker_store.ts";
import { createTestApp } from "../../tests/_app.ts";
import { refreshSeconds } from "./system.tsx";
import { createTestDb } from "../../tests/_db.ts";
import { accessTokenFor, insertTrader } from "../../tests/_fixtures.ts";

type TestApp = ReturnType<typeof createTestApp>;

async function page(
  test: TestApp,
  db: Queryable,
  user: { id: string; role: "admin" | "trader" },
  path: string,
) {
  const { token } = await accessTokenFor(db, user, {
    secret: test.config.jwtSecret,
    now: test.clock.now(),
  });
  return test.app.request(path, { headers: { Cookie: `te_access=${token}` } });
}

Deno.test("system page shows an admin the probes, instance, queue and every account's breaker", async () => {
  await using tdb = await createTestDb("pglite");
  const breakers = memoryBreakerStore();
  await using test = createTestApp({
    db: tdb.db,
    breakers,
    probes: {
      database: () => Promise.resolve({ engine: "pglite" }),
      kv: () => Promise.reject(new Error("kv is gone")),
    },
  });
  test.deps.details = () =>
    Promise.resolve({
      actors: [{ id: "ingest", state: "running", restarts: 2 }],
      executors: [],
      mailboxes: { ingest: 3 },
      queue: { pending: 4, deadLetters: 1 },
    });
  const admin = await insertTrader(tdb.db, { email: "root@example.com" });
  await tdb.db.query("UPDATE users SET role = 'admin' WHERE id = $1", [admin.userId]);
  const ann = await insertTrader(tdb.db, { email: "ann@example.com" });

  const res = await page(test, tdb.db, { id: admin.userId, role: "admin" }, "/system");
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /data-island="SystemHealth"/);
  assert.match(html, /data-island="PageRefresh"/);
  // The refreshed region holds no island: its swapped-in HTML would not hydrate.
  const region = html.slice(html.indexOf('data-refresh-region="system"'));
  assert.doesNotMatch(region, /data-island=/);
  assert.match(html, /data-probe="database" data-status="ok"/);
  assert.match(html, /data-probe="kv" data-status="error"/);
  assert.match(
    html,
    /class="banner danger" role="alert" data-failing="kv">Degraded: kv \(kv is gone\)/,
  );
  assert.match(html, /data-version="true">0\.1\.0</);
  assert.match(html, /data-environment="true">test</);
  assert.match(html, /data-cluster="off"/);
  assert.match(html, /data-queue-pending="4"/);
  assert.match(html, /data-queue-dead="1"/);
  assert.match(html, /data-actor="ingest" data-state="running"/);
  // Every user's accounts, with their breakers.
  assert.match(html, new RegExp(`data-breaker-account="${admin.accountId}" data-breaker="closed"`));
  assert.match(html, new RegExp(`data-breaker-account="${ann.accountId}" data-breaker="closed"`));
  assert.match(html, /ann@example\.com/);
  // Admins see the System link in the navigation.
  assert.match(html, /href="\/system" aria-current="page"/);
});

Deno.test("system page is a 404 page for a trader, and the login for nobody", async () => {
  await using tdb = await createTestDb("pglite");
  await using test = createTestApp({ db: tdb.db });
  const ann = await insertTrader(tdb.db);

  const res = await page(test, tdb.db, { id: ann.userId, role: "trader" }, "/system");
  assert.equal(res.status, 404);
  const html = await res.text();
  assert.match(html, /Not found/);
  assert.doesNotMatch(html, /href="\/system"/);
  assert.doesNotMatch(html, /SystemHealth/);

  const anonymous = await test.app.request("/system");
  assert.equal(anonymous.status, 303);
});

Deno.test("the system page refreshes its figures every 10 s, or ?refresh=2..300", () => {
  assert.equal(refreshSeconds(undefined), 10);
  assert.equal(refreshSeconds("2"), 2);
  assert.equal(refreshSeconds("300"), 300);
  for (const bad of ["1", "301", "2.5", "abc", "", "-5"]) assert.equal(refreshSeconds(bad), 10);
});
