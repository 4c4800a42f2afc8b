import assert from "node:assert/strict";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { uuidv7 } from "../lib/ids.ts";
import { generateWebhookKey } from "../lib/webhook_key.ts";
import { DbUnavailableError, isDbUnavailable, type Queryable } from "./client.ts";
import {
  findKeyAndAccount,
  insertWebhookKey,
  warnExpiringWebhookKeys,
  WebhookKeyFinder,
} from "./webhook_keys.ts";

const DAY_MS = 86_400_000;
const NOW = Date.UTC(2026, 0, 5, 14, 30);

async function key(
  db: Queryable,
  userId: string,
  name: string,
  expiresInMs: number | null,
  extra: { revoked?: boolean; replacedBy?: string } = {},
): Promise<string> {
  const generated = await generateWebhookKey();
  const row = await insertWebhookKey(db, {
    id: uuidv7(NOW),
    userId,
    name,
    prefix: generated.prefix,
    hash: generated.hash,
    expiresAt: expiresInMs === null ? null : new Date(NOW + expiresInMs),
    createdAt: new Date(NOW - DAY_MS),
  });
  if (extra.revoked || extra.replacedBy) {
    await db.query(
      "UPDATE webhook_keys SET revoked_at = $2, replaced_by = $3 WHERE id = $1",
      [row.id, extra.revoked ? new Date(NOW) : null, extra.replacedBy ?? null],
    );
  }
  return row.id;
}

for (const engine of ENGINES) {
  Deno.test(`warnExpiringWebhookKeys warns once per usable key expiring within a week and journals it (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const soon = await key(t.db, ann.userId, "soon", 3 * DAY_MS);
    const later = await key(t.db, ann.userId, "later", 8 * DAY_MS);
    await key(t.db, ann.userId, "never", null);
    await key(t.db, ann.userId, "revoked", 2 * DAY_MS, { revoked: true });
    await key(t.db, ann.userId, "expired", -1);
    await key(t.db, ann.userId, "replaced", DAY_MS, { replacedBy: later });

    const warned = await warnExpiringWebhookKeys(t.db, new Date(NOW));
    assert.equal(warned.length, 1);
    const [prefix] = await t.db.query<{ prefix: string }>(
      "SELECT prefix FROM webhook_keys WHERE id = $1",
      [soon],
    );
    assert.deepEqual(warned[0], {
      id: soon,
      userId: ann.userId,
      name: "soon",
      prefix: prefix!.prefix,
      expiresAt: new Date(NOW + 3 * DAY_MS),
    });
    const journal = await t.db.query<{ user_id: string; event: string; data: unknown; at: Date }>(
      "SELECT user_id, event, data, at FROM journal WHERE event = 'webhook_key.expiring'",
    );
    assert.deepEqual([...journal], [{
      user_id: ann.userId,
      event: "webhook_key.expiring",
      data: {
        key_id: soon,
        name: "soon",
        prefix: prefix!.prefix,
        expires_at: new Date(NOW + 3 * DAY_MS).toISOString(),
      },
      at: new Date(NOW),
    }]);
    const [mark] = await t.db.query<{ expiry_warned_at: Date }>(
      "SELECT expiry_warned_at FROM webhook_keys WHERE id = $1",
      [soon],
    );
    assert.deepEqual(mark!.expiry_warned_at, new Date(NOW));

    assert.equal((await warnExpiringWebhookKeys(t.db, new Date(NOW + 60_000))).length, 0, "once");
    const nextDay = await warnExpiringWebhookKeys(t.db, new Date(NOW + DAY_MS + 1));
    assert.deepEqual(nextDay.map((k) => k.name), ["later"], "a week before it expires");
  });

  Deno.test(`warnExpiringWebhookKeys called concurrently warns each key exactly once (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const ids = new Set<string>();
    for (let u = 0; u < 3; u++) {
      const trader = await insertTrader(t.db);
      for (let i = 0; i < 20; i++) {
        ids.add(await key(t.db, trader.userId, `k${i}`, (i + 1) * 3_600_000));
      }
    }
    const now = new Date(NOW);
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => warnExpiringWebhookKeys(t.db, now, { limit: 25 })),
    );
    const more = await warnExpiringWebhookKeys(t.db, now, { limit: 100 });
    const warned = [...runs.flat(), ...more].map((k) => k.id);
    assert.equal(warned.length, ids.size, "no key twice");
    assert.deepEqual(new Set(warned), ids, "every key once");
    const [{ n }] = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM journal WHERE event = 'webhook_key.expiring'",
    ) as [{ n: number }];
    assert.equal(n, ids.size, "one journal entry per key");
  });
}

/** A key in clear with its hash, stored for `userId` (expired, revoked or usable). */
async function storedKey(
  db: Queryable,
  userId: string,
  options: { expiresInMs?: number; revoked?: boolean } = {},
) {
  const generated = await generateWebhookKey();
  const row = await insertWebhookKey(db, {
    id: uuidv7(NOW),
    userId,
    name: "k",
    prefix: generated.prefix,
    hash: generated.hash,
    expiresAt: options.expiresInMs === undefined ? null : new Date(NOW + options.expiresInMs),
    createdAt: new Date(NOW - DAY_MS),
  });
  if (options.revoked) {
    await db.query("UPDATE webhook_keys SET revoked_at = $2 WHERE id = $1", [
      row.id,
      new Date(NOW),
    ]);
  }
  return generated.hash;
}

for (const engine of ENGINES) {
  Deno.test(`the key finder answers concurrent lookups in one round trip, each as findKeyAndAccount would (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const bob = await insertTrader(t.db);
    const usable = await storedKey(t.db, ann.userId);
    const bobs = await storedKey(t.db, bob.userId, { expiresInMs: DAY_MS });
    const expired = await storedKey(t.db, ann.userId, { expiresInMs: -1 });
    const revoked = await storedKey(t.db, ann.userId, { revoked: true });
    const unknown = (await generateWebhookKey()).hash;
    const now = new Date(NOW);
    const lookups: Array<[Uint8Array, string]> = [
      [usable, "paper"],
      [usable, "nope"], // the key, without an account of that alias
      [bobs, "paper"],
      [expired, "paper"],
      [revoked, "paper"],
      [unknown, "paper"],
      [usable, "paper"],
    ];
    let statements = 0;
    const counted: Queryable = {
      query: (text, params) => {
        statements++;
        return t.db.query(text, params);
      },
    };
    const finder = new WebhookKeyFinder(counted);
    const found = await Promise.all(lookups.map(([hash, alias]) => finder.find(hash, alias, now)));
    assert.equal(statements, 1);
    const expected = await Promise.all(
      lookups.map(([hash, alias]) => findKeyAndAccount(t.db, hash, alias, now)),
    );
    assert.deepEqual(found, expected);
    assert.equal(found[0]?.key.userId, ann.userId);
    assert.equal(found[0]?.account?.id, ann.accountId);
    assert.equal(found[1]?.account, null);
    assert.equal(found[2]?.account?.id, bob.accountId);
    assert.deepEqual(found.slice(3, 6), [null, null, null]);
  });

  Deno.test(`the key finder fails every lookup of a batch when the database is unreachable (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const usable = await storedKey(t.db, ann.userId);
    let down = true;
    const flaky: Queryable = {
      query: (text, params) =>
        down
          ? Promise.reject(new DbUnavailableError("Cannot reach the database: refused"))
          : t.db.query(text, params),
    };
    const finder = new WebhookKeyFinder(flaky);
    const results = await Promise.allSettled(
      [1, 2, 3].map(() => finder.find(usable, "paper", new Date(NOW))),
    );
    assert.ok(results.every((r) => r.status === "rejected" && isDbUnavailable(r.reason)));
    down = false;
    assert.equal((await finder.find(usable, "paper", new Date(NOW)))?.account?.id, ann.accountId);
  });
}

for (const engine of ENGINES) {
  Deno.test(`the key finder answers from memory only when asked, only keys with an account, until its time is up (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const hash = await storedKey(t.db, ann.userId);
    let statements = 0;
    const counted: Queryable = {
      query: (text, params) => {
        statements++;
        return t.db.query(text, params);
      },
    };
    let clock = 0;
    const finder = new WebhookKeyFinder(counted, { cacheMs: 1_000, now: () => clock });
    const now = new Date(NOW);
    const first = await finder.find(hash, "paper", now, { cached: true });
    assert.equal(first?.account?.id, ann.accountId);
    assert.equal(statements, 1);
    assert.equal(await finder.find(hash, "paper", now, { cached: true }), first);
    assert.equal(statements, 1, "answered from memory");
    // Not asked for a cached answer: the database, which sees the revocation.
    await t.db.query("UPDATE webhook_keys SET revoked_at = now() WHERE key_hash = $1", [hash]);
    assert.equal(await finder.find(hash, "paper", now), null);
    assert.equal(statements, 2);
    assert.equal(await finder.find(hash, "paper", now, { cached: true }), null, "forgotten");
    assert.equal(statements, 3);
    // A key without the account asked for is never kept.
    await t.db.query("UPDATE webhook_keys SET revoked_at = NULL WHERE key_hash = $1", [hash]);
    assert.equal((await finder.find(hash, "nope", now, { cached: true }))?.account, null);
    assert.equal((await finder.find(hash, "nope", now, { cached: true }))?.account, null);
    assert.equal(statements, 5);
    // Kept until its time is up, or the key's own expiry.
    assert.ok(await finder.find(hash, "paper", now, { cached: true }));
    clock = 999;
    assert.ok(await finder.find(hash, "paper", now, { cached: true }));
    assert.equal(statements, 6);
    clock = 1_000;
    assert.ok(await finder.find(hash, "paper", now, { cached: true }));
    assert.equal(statements, 7);
  });
}

for (const engine of ENGINES) {
  Deno.test(`the key finder answers nothing from memory after a database failure until a lookup succeeds (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const hash = await storedKey(t.db, ann.userId);
    let statements = 0;
    let down = false;
    const flaky: Queryable = {
      query: (text, params) => {
        statements++;
        return down
          ? Promise.reject(new DbUnavailableError("Cannot reach the database: refused"))
          : t.db.query(text, params);
      },
    };
    const finder = new WebhookKeyFinder(flaky);
    const now = new Date(NOW);
    const cached = () => finder.find(hash, "paper", now, { cached: true });
    assert.ok(await cached());
    assert.ok(await cached());
    assert.equal(statements, 1);
    finder.distrust(); // another statement found the database gone
    down = true;
    await assert.rejects(cached(), (e) => isDbUnavailable(e));
    await assert.rejects(cached(), (e) => isDbUnavailable(e), "still not from memory");
    down = false;
    assert.ok(await cached());
    assert.equal(statements, 4);
    assert.ok(await cached());
    assert.equal(statements, 4, "from memory again");
  });
}
