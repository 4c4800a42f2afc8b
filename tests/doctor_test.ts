/** `deno task doctor` as an operator runs it: healthy, broken, misconfigured. */
import assert from "node:assert/strict";
import { openDb } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { pgliteDir } from "../db/paths.ts";
import { openPostgres } from "../db/postgres.ts";
import { createCipher } from "../lib/crypto.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createPostgresDatabase } from "./_db.ts";
import { runTask } from "./_process.ts";
import { startUpstashBridge } from "./fakes/upstash_bridge.ts";
import { startFakeTelegram } from "./fakes/telegram.ts";
import { startFakeDiscord } from "./fakes/discord.ts";

const KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEY = "f".repeat(64);
const SECRETS = {
  JWT_SECRET: "doctor-test-jwt-secret-0123456789abcdef",
  ENCRYPTION_KEY: KEY,
  OPERATOR_API_KEY: "doctor-test-operator-key",
};

function hex(value: string): Uint8Array {
  return Uint8Array.from(value.match(/../g)!, (h) => parseInt(h, 16));
}

/** The status word of the check named `check` (first line of it). */
function statusOf(stdout: string, check: string): string | undefined {
  return new RegExp(`^(ok|warn|skip|FAIL)\\s+${check}\\s`, "m").exec(stdout)?.[1];
}

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "trendedge-doctor-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("doctor passes a healthy setup and checks broker credentials against the keys", async () => {
  const database = await createPostgresDatabase();
  await using data = await tempDir();
  try {
    const db = openPostgres(database.url, { poolSize: 1 });
    try {
      await migrateUp(db);
      const userId = uuidv7();
      await db.query(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, 'd@example.com', 'x')",
        [
          userId,
        ],
      );
      const sealed = await (await createCipher(hex(KEY))).encrypt(
        JSON.stringify({ keyId: "PKDOCTOR", secretKey: "doctor-secret-value" }),
      );
      await db.query(
        `INSERT INTO broker_accounts (id, user_id, alias, broker, credentials)
         VALUES ($1, $2, 'alpaca', 'alpaca', $3), ($4, $2, 'empty', 'alpaca', NULL)`,
        [uuidv7(), userId, sealed, uuidv7()],
      );
    } finally {
      await db.close();
    }
    const env = { ...SECRETS, APP_ENV: "staging", DATABASE_URL: database.url, DATA_DIR: data.path };

    const healthy = await runTask(env, "doctor");
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    assert.match(healthy.stdout, /^ok\s+config\s+APP_ENV=staging/m);
    assert.match(healthy.stdout, /^ok\s+secrets\s+/m);
    assert.match(healthy.stdout, /^ok\s+database\s+PostgreSQL \(DATABASE_URL\): PostgreSQL \d+/m);
    assert.match(healthy.stdout, /^ok\s+migrations\s+\d+ applied, none pending/m);
    assert.match(healthy.stdout, /^ok\s+kv\s+Deno KV at /m);
    assert.match(healthy.stdout, /^skip\s+redis\s+not configured/m);
    assert.match(
      healthy.stdout,
      /^ok\s+brokers\s+2 Alpaca account\(s\): 1 open with ENCRYPTION_KEY/m,
    );
    assert.match(
      healthy.stdout,
      /^warn\s+brokers\s+1 Alpaca account\(s\) without credentials.*"empty"/m,
    );
    assert.match(healthy.stdout, /^skip\s+alerts\s+no operator channel/m);
    assert.match(healthy.stdout, /^Summary: \d+ ok, 1 warning\(s\), 2 skipped, 0 failed$/m);
    for (
      const secret of [KEY, SECRETS.JWT_SECRET, "doctor-secret-value", "PKDOCTOR", database.url]
    ) {
      assert.ok(!healthy.stdout.includes(secret) && !healthy.stderr.includes(secret), "no secret");
    }

    const wrongKey = await runTask({ ...env, ENCRYPTION_KEY: OTHER_KEY }, "doctor");
    assert.equal(wrongKey.code, 1);
    assert.match(
      wrongKey.stdout,
      /^FAIL\s+brokers\s+2 Alpaca account\(s\): 0 open with ENCRYPTION_KEY; 1 do not open .*"alpaca"/m,
    );
    assert.match(wrongKey.stdout, /1 failed$/m);

    const rotating = await runTask(
      {
        ...env,
        ENCRYPTION_KEY: OTHER_KEY,
        ENCRYPTION_KEY_VERSION: "2",
        ENCRYPTION_KEY_PREVIOUS: KEY,
      },
      "doctor",
    );
    assert.equal(rotating.code, 0, rotating.stdout);
    assert.match(
      rotating.stdout,
      /^warn\s+brokers\s+.*1 still sealed with ENCRYPTION_KEY_PREVIOUS/m,
    );
  } finally {
    await database.drop();
  }
});

Deno.test("doctor fails with a clear line when the database does not answer", async () => {
  await using data = await tempDir();
  const url = `postgres://trendedge:hunter2-password@127.0.0.1:${closedPort()}/trendedge`;
  const out = await runTask({ DATABASE_URL: url, DATA_DIR: data.path }, "doctor");
  assert.equal(out.code, 1, out.stdout + out.stderr);
  assert.match(
    out.stdout,
    /^FAIL\s+database\s+Cannot reach PostgreSQL \(DATABASE_URL\): .*ECONNREFUSED/m,
  );
  assert.match(out.stdout, /^skip\s+migrations\s+no database to read/m);
  assert.match(out.stdout, /^skip\s+brokers\s+no database to read/m);
  assert.match(out.stdout, /^ok\s+kv\s/m, "the other checks still run");
  assert.ok(!out.stdout.includes("hunter2") && !out.stderr.includes("hunter2"));
});

Deno.test("doctor exits 78 naming every bad variable", async () => {
  const out = await runTask({ PORT: "eighty", DATABASE_URL: "mysql://db/x" }, "doctor");
  assert.equal(out.code, 78, out.stdout + out.stderr);
  assert.match(out.stdout, /^FAIL\s+config\s+"PORT" must be an integer/m);
  assert.match(out.stdout, /^FAIL\s+config\s+"DATABASE_URL" must be a postgres/m);
  assert.match(out.stdout, /^Summary: 0 ok, 0 warning\(s\), 0 skipped, 2 failed$/m);
  assert.equal(statusOf(out.stdout, "database"), undefined, "nothing is checked on a bad config");
});

Deno.test("doctor refuses development secrets in production and warns about them elsewhere", async () => {
  const production = await runTask(
    {
      APP_ENV: "production",
      JWT_SECRET: "dev-only-jwt-secret-change-me-0000000000000000",
      ENCRYPTION_KEY: "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=",
      OPERATOR_API_KEY: "dev-only-operator-key",
    },
    "doctor",
  );
  assert.equal(production.code, 78, production.stdout + production.stderr);
  for (const name of ["JWT_SECRET", "ENCRYPTION_KEY", "OPERATOR_API_KEY"]) {
    assert.match(
      production.stdout,
      new RegExp(
        `^FAIL\\s+config\\s+"${name}" must not be the development default in production`,
        "m",
      ),
    );
  }

  await using data = await tempDir();
  const staging = await runTask({ APP_ENV: "staging", DATA_DIR: `${data.path}/new` }, "doctor");
  assert.equal(staging.code, 0, staging.stdout + staging.stderr);
  assert.match(
    staging.stdout,
    /^warn\s+secrets\s+JWT_SECRET, ENCRYPTION_KEY, OPERATOR_API_KEY: development defaults in staging/m,
  );
  assert.match(staging.stdout, /^warn\s+database\s+PGlite at .* does not exist yet/m);
  assert.equal(statusOf(staging.stdout, "migrations"), "skip");
  assert.equal(
    (await Array.fromAsync(Deno.readDir(data.path))).length,
    0,
    "doctor created nothing",
  );
});

Deno.test("doctor fails pending migrations that start would refuse, and names a busy embedded database", async () => {
  const database = await createPostgresDatabase();
  await using data = await tempDir();
  try {
    const pending = await runTask(
      { ...SECRETS, APP_ENV: "production", DATABASE_URL: database.url, DATA_DIR: data.path },
      "doctor",
    );
    assert.equal(pending.code, 1, pending.stdout + pending.stderr);
    assert.match(
      pending.stdout,
      /^FAIL\s+migrations\s+\d+ pending \(1, .*\); start refuses to run on them: run "deno task migrate up"/m,
    );
    assert.equal(statusOf(pending.stdout, "brokers"), "skip");
  } finally {
    await database.drop();
  }

  const db = await openDb({ dataDir: pgliteDir(data.path) });
  try {
    const busy = await runTask({ DATA_DIR: data.path }, "doctor");
    assert.equal(busy.code, 0, busy.stdout + busy.stderr);
    assert.match(busy.stdout, /^warn\s+database\s+.*another trendedge process is using it/m);
  } finally {
    await db.close();
  }
});

Deno.test("doctor reaches Upstash when it is configured, and warns (not fails) when it does not answer", async () => {
  await using data = await tempDir();
  await using bridge = await startUpstashBridge();
  const base = { ...SECRETS, APP_ENV: "staging", DATA_DIR: data.path };
  const up = await runTask({
    ...base,
    UPSTASH_REDIS_REST_URL: bridge.url,
    UPSTASH_REDIS_REST_TOKEN: bridge.token,
  }, "doctor");
  assert.match(up.stdout, /^ok\s+redis\s+Upstash at 127\.0\.0\.1:\d+ answers/m, up.stdout);
  assert.ok(!up.stdout.includes(bridge.token), "the token is never printed");

  const down = await runTask({
    ...base,
    UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${closedPort()}`,
    UPSTASH_REDIS_REST_TOKEN: "some-token",
  }, "doctor");
  assert.equal(statusOf(down.stdout, "redis"), "warn", down.stdout);
  assert.match(down.stdout, /fall back to per-instance counts/);
});

Deno.test("doctor reaches the operator's alert channels without sending, and fails on a refused token", async () => {
  await using data = await tempDir();
  await using telegram = startFakeTelegram();
  await using discord = startFakeDiscord();
  const base = {
    ...SECRETS,
    APP_ENV: "staging",
    DATA_DIR: data.path,
    TELEGRAM_API_URL: telegram.url,
    DISCORD_API_URL: discord.url,
  };
  const good = await runTask({
    ...base,
    OPERATOR_TELEGRAM_BOT_TOKEN: "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    OPERATOR_TELEGRAM_CHAT_ID: "-1001",
    OPERATOR_DISCORD_WEBHOOK_URL: "https://discord.com/api/webhooks/42/goodtoken",
  }, "doctor");
  assert.match(good.stdout, /^ok\s+alerts\s+operator Telegram channel answers/m, good.stdout);
  assert.match(good.stdout, /^ok\s+alerts\s+operator Discord channel answers/m);
  assert.equal(telegram.requests.items.length, 0, "nothing was sent");
  assert.ok(
    !good.stdout.includes("ABCDEFGHIJKLMNOPQRSTUVWXYZ") && !good.stdout.includes("goodtoken"),
  );

  const bad = await runTask({
    ...base,
    OPERATOR_TELEGRAM_BOT_TOKEN: "123456:badbadbadbadbadbadbadbad",
    OPERATOR_TELEGRAM_CHAT_ID: "-1001",
  }, "doctor");
  assert.equal(statusOf(bad.stdout, "alerts"), "FAIL", bad.stdout);
  assert.match(bad.stdout, /Telegram refused the bot token \(401\)/);
  assert.notEqual(bad.code, 0);
});
