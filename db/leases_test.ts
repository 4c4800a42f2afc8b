import assert from "node:assert/strict";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import {
  acquireLease,
  claimTick,
  purgeLapsedLeases,
  releaseLeases,
  renewLeases,
} from "./leases.ts";

for (const engine of ENGINES) {
  Deno.test(`a lease has one owner until it lapses or is released (${engine})`, async () => {
    await using t = await createTestDb(engine);
    assert.equal(await acquireLease(t.db, "executor:a", "one", 60_000), null);
    assert.equal(await acquireLease(t.db, "executor:a", "one", 60_000), null, "renewable");
    const held = await acquireLease(t.db, "executor:a", "two", 60_000);
    assert.equal(held?.owner, "one");
    assert.ok(held!.expiresAt.getTime() > Date.now());

    // Two held, one lost to a lapse and a takeover: renewing reports only what is still ours.
    assert.equal(await acquireLease(t.db, "executor:b", "one", 1), null);
    await t.db.query("SELECT pg_sleep(0.01)");
    assert.equal(await acquireLease(t.db, "executor:b", "two", 60_000), null, "lapsed: taken");
    assert.deepEqual(
      [...await renewLeases(t.db, ["executor:a", "executor:b"], "one", 60_000)],
      ["executor:a"],
    );

    assert.equal(await releaseLeases(t.db, "one"), 1);
    assert.equal(await acquireLease(t.db, "executor:a", "two", 60_000), null, "released: free");
    assert.equal(await releaseLeases(t.db, "two", ["executor:b"]), 1);
    assert.deepEqual(
      (await t.db.query<{ name: string }>("SELECT name FROM leases")).map((r) => r.name),
      ["executor:a"],
    );
  });

  Deno.test(`concurrent claims of one lease: exactly one owner (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => acquireLease(t.db, "cron:scan", `i${i}`, 60_000)),
    );
    assert.equal(results.filter((r) => r === null).length, 1);
    const owners = new Set(results.filter((r) => r !== null).map((r) => r!.owner));
    assert.equal(owners.size, 1);
  });
}

for (const engine of ENGINES) {
  Deno.test(`a scheduled tick is claimed by exactly one instance (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const tick = new Date(Date.UTC(2026, 10, 22, 6, 0));
    const claims = await Promise.all(
      ["a", "b", "c"].map((owner) => claimTick(t.db, "scan:1h", tick, owner)),
    );
    assert.deepEqual(claims.filter(Boolean).length, 1);
    // The next tick, and another job's same tick, are claims of their own.
    assert.equal(await claimTick(t.db, "scan:1h", new Date(tick.getTime() + 3600_000), "b"), true);
    assert.equal(await claimTick(t.db, "summary", tick, "c"), true);
    await t.db.query("UPDATE leases SET expires_at = now() - interval '2 hours'");
    assert.equal(await purgeLapsedLeases(t.db), 3);
  });
}
