/** `deno task user:create` and `deno task key:create` as an operator runs them, on both engines. */
import assert from "node:assert/strict";
import { type Db, openDb } from "../db/client.ts";
import { pgliteDir } from "../db/paths.ts";
import { hashWebhookKey } from "../lib/webhook_key.ts";
import { createPostgresDatabase } from "./_db.ts";
import { runTask } from "./_process.ts";

function lastLine(text: string): string {
  return text.trimEnd().split("\n").at(-1) ?? "";
}

/** Runs the operator flow against `env`; `open` opens the same database once the tasks exit. */
async function operatorFlow(env: Record<string, string>, open: () => Promise<Db>) {
  const first = await runTask(
    env,
    "user:create",
    "--email",
    "Ops@Example.com",
    "--password",
    "0123456789",
  );
  assert.equal(first.code, 0, first.stderr);
  const userId = /Created user ([0-9a-f-]{36})/.exec(first.stdout)?.[1];
  assert.ok(userId, first.stdout);
  assert.match(first.stdout, /email: Ops@Example\.com/);
  assert.match(first.stdout, /role: admin/);

  const second = await runTask(
    env,
    "user:create",
    "--email",
    "t@example.com",
    "--password",
    "0123456789",
  );
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /role: trader/);

  const duplicate = await runTask(
    env,
    "user:create",
    "--email",
    "ops@example.COM",
    "--password",
    "0123456789",
  );
  assert.equal(duplicate.code, 1);
  assert.match(
    duplicate.stderr,
    /Cannot create user "ops@example\.COM": a user with this email already exists/,
  );

  const weak = await runTask(env, "user:create", "--email", "w@example.com", "--password", "short");
  assert.notEqual(weak.code, 0);
  assert.match(weak.stderr, /at least 10 characters/);

  const created = await runTask(
    env,
    "key:create",
    "--email",
    "ops@example.com",
    "--name",
    "tradingview",
    "--expires-days",
    "30",
  );
  assert.equal(created.code, 0, created.stderr);
  const key = lastLine(created.stdout);
  assert.match(key, /^whk_[A-Za-z0-9_-]{43}$/);
  assert.match(created.stdout, /Created webhook key "tradingview" for Ops@Example\.com/);
  assert.equal(created.stdout.split(key).length, 2, "the key is printed exactly once");
  assert.ok(!created.stderr.includes(key));

  const unknown = await runTask(env, "key:create", "--email", "nobody@example.com");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no user has the email "nobody@example\.com"/);

  const db = await open();
  try {
    const rows = await db.query<
      {
        id: string;
        user_id: string;
        name: string;
        prefix: string;
        key_hash: Uint8Array;
        days: number;
        dump: string;
      }
    >(
      `SELECT id, user_id, name, prefix, key_hash,
              round(extract(epoch FROM expires_at - created_at) / 86400)::int AS days,
              row_to_json(k)::text AS dump
       FROM webhook_keys k`,
    );
    assert.equal(rows.length, 1);
    const row = rows[0]!;
    assert.equal(row.user_id, userId);
    assert.equal(row.name, "tradingview");
    assert.equal(row.days, 30);
    assert.ok(key.startsWith(row.prefix));
    assert.deepEqual(
      new Uint8Array(row.key_hash),
      await hashWebhookKey(key),
      "its SHA-256 is stored",
    );
    assert.ok(!row.dump.includes(key), "the key itself is not stored");
    const [leak] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT row_to_json(u)::text AS t FROM users u
         UNION ALL SELECT row_to_json(j)::text FROM journal j
         UNION ALL SELECT row_to_json(a)::text FROM broker_accounts a
       ) x WHERE position($1 IN t) > 0`,
      [key],
    );
    assert.equal(leak!.n, 0);
    const audits = await db.query<
      { actor_id: string | null; actor: string; target_id: string; data: string }
    >(
      `SELECT actor_id, actor, target_id, data::text AS data FROM audit_log
       WHERE action = 'webhook_key.created'`,
    );
    assert.deepEqual(
      audits.map((a) => [a.actor_id, a.actor, a.target_id]),
      [[null, "operator", row.id]],
      "audited as the operator",
    );
    assert.ok(!audits[0]!.data.includes(key), "without the key");
    const accounts = await db.query<{ alias: string }>(
      "SELECT alias FROM broker_accounts WHERE user_id = $1",
      [userId],
    );
    assert.deepEqual(accounts.map((a) => a.alias), ["paper"]);
  } finally {
    await db.close();
  }
  return key;
}

Deno.test("user:create and key:create work on a fresh embedded data dir", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "trendedge-tasks-" });
  try {
    const key = await operatorFlow(
      { DATA_DIR: dataDir },
      () => openDb({ dataDir: pgliteDir(dataDir) }),
    );
    // Not in clear anywhere on disk either.
    const needle = new TextEncoder().encode(key);
    for await (const file of walk(dataDir)) {
      assert.ok(!contains(await Deno.readFile(file), needle), `the key is in ${file}`);
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("user:create and key:create work on a fresh PostgreSQL database", async () => {
  const database = await createPostgresDatabase();
  try {
    await operatorFlow(
      { DATABASE_URL: database.url },
      () => openDb({ url: database.url, poolSize: 1 }),
    );
  } finally {
    await database.drop();
  }
});

Deno.test("user:create and key:create print usage and exit 64 on bad arguments", async () => {
  for (
    const [name, args, pattern] of [
      ["user:create", [], /Usage: deno task user:create/],
      ["user:create", ["--email", "a@example.com"], /Usage: deno task user:create/],
      [
        "user:create",
        ["--email", "a@example.com", "--pasword", "x"],
        /Usage: deno task user:create/,
      ],
      ["key:create", [], /Usage: deno task key:create/],
      [
        "key:create",
        ["--email", "a@example.com", "--expires-days", "0"],
        /"--expires-days" must be/,
      ],
      [
        "key:create",
        ["--email", "a@example.com", "--expires-days", "soon"],
        /"--expires-days" must be/,
      ],
    ] as const
  ) {
    const out = await runTask({ DATA_DIR: "/nonexistent/never-created" }, name, ...args);
    assert.equal(out.code, 64, `${name} ${args.join(" ")}: ${out.stderr}`);
    assert.match(out.stderr, pattern);
    assert.equal(out.stdout, "");
  }
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* walk(path);
    else if (entry.isFile) yield path;
  }
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0]!;
  for (let i = haystack.indexOf(first); i !== -1; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return false;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}
