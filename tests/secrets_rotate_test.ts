/**
 * `deno task secrets:rotate` as an operator runs it, against a PostgreSQL test database: credentials
 * sealed with key version 1 are re-sealed under version 2, all or nothing.
 */
import assert from "node:assert/strict";
import type { Db } from "../db/client.ts";
import { openCredentials, sealCredentials } from "../lib/credentials.ts";
import { createKeyring } from "../lib/crypto.ts";
import { createChannel } from "../db/notifications.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestDb } from "./_db.ts";
import { insertTrader } from "./_fixtures.ts";
import { hexBytes } from "./_pipeline.ts";
import { runTask } from "./_process.ts";

const K1 = "11".repeat(32);
const K2 = "22".repeat(32);
const K3 = "33".repeat(32);

const PAIRS = [
  { keyId: "PKROTATE000000000001", secretKey: "rotate-secret-one-0123456789abcdefgh" },
  { keyId: "PKROTATE000000000002", secretKey: "rotate-secret-two-0123456789abcdefgh" },
  { keyId: "PKROTATE000000000003", secretKey: "rotate-secret-three-0123456789abcdef" },
];

async function sealedValues(db: Db): Promise<Map<string, Uint8Array>> {
  const rows = await db.query<{ id: string; credentials: Uint8Array }>(
    "SELECT id, credentials FROM broker_accounts WHERE credentials IS NOT NULL ORDER BY id",
  );
  return new Map(rows.map((r) => [r.id, new Uint8Array(r.credentials)]));
}

function rotations(db: Db) {
  return db.query<{ actor: string; actorId: string | null; data: Record<string, unknown> }>(
    `SELECT actor, actor_id AS "actorId", data FROM audit_log WHERE action = 'secrets.rotated'
     ORDER BY id`,
  );
}

function assertNoSecret(...texts: string[]) {
  for (const text of texts) {
    for (const pair of PAIRS) {
      assert.ok(!text.includes(pair.keyId) && !text.includes(pair.secretKey), `leaked: ${text}`);
    }
  }
}

Deno.test("secrets:rotate re-encrypts every credential under the new key, all or nothing", async () => {
  await using t = await createTestDb("postgres");
  const { db } = t;
  const v1 = createKeyring({ current: { key: hexBytes(K1), version: 1 } });
  const ann = await insertTrader(db);
  const bob = await insertTrader(db);
  const ids: string[] = [];
  for (const [i, pair] of PAIRS.entries()) {
    const id = uuidv7();
    ids.push(id);
    await db.query(
      `INSERT INTO broker_accounts (id, user_id, alias, broker, credentials)
       VALUES ($1, $2, $3, 'alpaca', $4)`,
      [id, i === 0 ? bob.userId : ann.userId, `alpaca-${i}`, await sealCredentials(v1, pair)],
    );
  }
  const original = await sealedValues(db);
  assert.equal(original.size, 3);
  const env = { APP_ENV: "test", DATABASE_URL: t.url! };

  // The new key without the old one: version 1 values cannot be read, so nothing changes.
  const missing = await runTask(
    { ...env, ENCRYPTION_KEY: K2, ENCRYPTION_KEY_VERSION: "2" },
    "secrets:rotate",
  );
  assert.equal(missing.code, 1, missing.stdout + missing.stderr);
  assert.match(
    missing.stderr,
    /Cannot rotate secrets: 3 value\(s\) sealed with key version 1, and no key of that version/,
  );
  assert.match(missing.stderr, /ENCRYPTION_KEY_PREVIOUS/);
  assert.match(missing.stderr, /Nothing was changed/);
  assert.deepEqual(await sealedValues(db), original);

  const rotating = {
    ...env,
    ENCRYPTION_KEY: K2,
    ENCRYPTION_KEY_VERSION: "2",
    ENCRYPTION_KEY_PREVIOUS: K1,
  };
  const dry = await runTask(rotating, "secrets:rotate", "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /before: v1: 3/);
  assert.match(dry.stdout, /3 would be re-encrypted under key version 2/);
  assert.match(dry.stdout, /Nothing was changed/);
  assert.deepEqual(await sealedValues(db), original, "a dry run changes nothing");
  assert.equal((await rotations(db)).length, 0);

  const run = await runTask(rotating, "secrets:rotate");
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /before: v1: 3/);
  assert.match(run.stdout, /after: {2}v2: 3/);
  assert.match(run.stdout, /Re-encrypted 3 value\(s\) under key version 2/);
  assert.match(run.stdout, /ENCRYPTION_KEY_PREVIOUS can be removed/);
  const rotated = await sealedValues(db);
  // Readable with the new key alone, each to the pair it held.
  const v2 = createKeyring({ current: { key: hexBytes(K2), version: 2 } });
  for (const [i, id] of ids.entries()) {
    const value = rotated.get(id)!;
    assert.equal(value[0], 2, "sealed with version 2");
    assert.notDeepEqual(value, original.get(id));
    assert.deepEqual(await openCredentials(v2, value), PAIRS[i]);
  }
  const [entry, ...more] = await rotations(db);
  assert.deepEqual(more, []);
  assert.deepEqual(entry, {
    actor: "operator",
    actorId: null,
    data: { key_version: 2, rotated: 3, before: { "1": 3 }, after: { "2": 3 } },
  });

  // Again: nothing left to do.
  const again = await runTask(rotating, "secrets:rotate");
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /before: v2: 3/);
  assert.match(again.stdout, /Re-encrypted 0 value\(s\)/);
  assert.deepEqual(await sealedValues(db), rotated);

  // A wrong current key of the right version: the values do not decrypt, nothing changes.
  const wrong = await runTask(
    { ...env, ENCRYPTION_KEY: K3, ENCRYPTION_KEY_VERSION: "2", ENCRYPTION_KEY_PREVIOUS: K1 },
    "secrets:rotate",
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /do not decrypt: wrong key or tampered value/);
  assert.deepEqual(await sealedValues(db), rotated);

  assertNoSecret(
    ...[missing, dry, run, again, wrong].flatMap((o) => [o.stdout, o.stderr]),
    JSON.stringify(await rotations(db)),
  );
});

Deno.test("secrets:rotate re-encrypts notification channel secrets too", async () => {
  await using t = await createTestDb("postgres");
  const { db } = t;
  const v1 = createKeyring({ current: { key: hexBytes(K1), version: 1 } });
  const ann = await insertTrader(db);
  const token = "123456:AAH-rotate-channel-secret-token";
  const channel = await createChannel(db, {
    id: uuidv7(),
    userId: ann.userId,
    kind: "telegram",
    name: "phone",
    secret: await v1.encrypt(token),
    chatId: "1001",
    events: null,
  });
  const run = await runTask({
    APP_ENV: "test",
    DATABASE_URL: t.url!,
    ENCRYPTION_KEY: K2,
    ENCRYPTION_KEY_VERSION: "2",
    ENCRYPTION_KEY_PREVIOUS: K1,
  }, "secrets:rotate");
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /Re-encrypted 1 value\(s\) under key version 2/);
  const [row] = await db.query<{ secret: Uint8Array }>(
    "SELECT secret FROM notification_channels WHERE id = $1",
    [channel.id],
  );
  const v2 = createKeyring({ current: { key: hexBytes(K2), version: 2 } });
  assert.equal(row!.secret[0], 2);
  assert.equal(await v2.decrypt(new Uint8Array(row!.secret)), token);
  assert.ok(!(run.stdout + run.stderr).includes(token));
});
