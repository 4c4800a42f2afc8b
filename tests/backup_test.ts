/**
 * `deno task backup` and `deno task restore`: every table copied exactly, across engines, checked
 * by checksums computed independently in SQL; refusals and broken files leave nothing behind.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { audit, OPERATOR } from "../db/audit.ts";
import { setGlobalKillSwitch } from "../db/accounts.ts";
import {
  BackupFileError,
  describeTables,
  restoreBackup,
  RestoreRefusedError,
  writeBackup,
} from "../db/backup.ts";
import { type Db, openDb } from "../db/client.ts";
import { upsertBars } from "../db/bars.ts";
import { createChannel, insertDeadLetter } from "../db/notifications.ts";
import { acquireLease, claimTick } from "../db/leases.ts";
import {
  addWatch,
  appendTrendlineEvent,
  insertTrendline,
  writeScanSettings,
} from "../db/trendlines.ts";
import { recordLoginFailure } from "../db/login_throttle.ts";
import { loadMigrations, migrateUp } from "../db/migrate.ts";
import { pgliteDir } from "../db/paths.ts";
import { openPostgres } from "../db/postgres.ts";
import { createSession } from "../db/sessions.ts";
import { createUser } from "../db/users.ts";
import { insertWebhookKey } from "../db/webhook_keys.ts";
import { createCipher } from "../lib/crypto.ts";
import { uuidv7 } from "../lib/ids.ts";
import { generateWebhookKey } from "../lib/webhook_key.ts";
import { createPostgresDatabase, createTestDb } from "./_db.ts";
import { runTask } from "./_process.ts";

/** Beyond 2^53: a JavaScript number cannot hold it, the backup must. */
const BIG_JOURNAL_ID = "9007199254740993";
const TRICKY_TEXT = "ünïcödé ✓ 🚀 \"quoted\" \\ back\nslash\ttab 'single' NUL-free";

/** Realistic rows in every table, through the real code paths where there is one. */
async function fill(db: Db): Promise<void> {
  const cheap = { iterations: 1_000 };
  const admin = await createUser(
    db,
    { email: "Admin@Example.com", password: "correct horse battery", actor: OPERATOR },
    cheap,
  );
  const trader = await createUser(
    db,
    { email: "trader@example.com", password: "another long passphrase" },
    cheap,
  );
  const sso = await createUser(db, { email: "sso@example.com", password: null }, cheap);
  await db.query(
    `INSERT INTO external_identities (issuer, subject, user_id, email)
     VALUES ('https://idp.example.com/', 'user|42', $1, 'sso@example.com'),
            ('https://Other.example.com/', 'abc', $1, NULL)`,
    [sso.id],
  );

  // An older key replaced by a newer one: the row points forward (a self-reference).
  const now = Date.now();
  const older = uuidv7(now - 60_000);
  const newer = uuidv7(now);
  for (const id of [older, newer]) {
    const key = await generateWebhookKey();
    await insertWebhookKey(db, {
      id,
      userId: trader.id,
      name: id === older ? "tradingview" : "tradingview (rotated)",
      prefix: key.prefix,
      hash: key.hash,
      expiresAt: new Date(now + 86_400_000),
    });
  }
  await db.query(
    `UPDATE webhook_keys SET revoked_at = '2024-02-29 23:59:59.999999+00', replaced_by = $2
     WHERE id = $1`,
    [older, newer],
  );
  await audit(db, {
    ...OPERATOR,
    action: "webhook_key.rotated",
    targetType: "webhook_key",
    targetId: older,
    ip: "2001:db8::1",
    userAgent: TRICKY_TEXT,
    data: { replaced_by: newer, note: TRICKY_TEXT, nested: { a: [1, 2.5, null, true] } },
  });

  // Alpaca accounts: sealed credentials, and a bytea holding every byte value.
  const cipher = await createCipher(new Uint8Array(32).fill(7));
  const sealed = await cipher.encrypt(JSON.stringify({ keyId: "PK123", secretKey: "s3cr3t" }));
  const live = uuidv7(now);
  await db.query(
    `INSERT INTO broker_accounts (id, user_id, alias, broker, live, credentials, symbol_map, risk)
     VALUES ($1, $2, 'alpaca-live', 'alpaca', true, $3, $4::text::jsonb, $5::text::jsonb),
            ($6, $2, 'alpaca-bytes', 'alpaca', false, $7, '{}', '{}')`,
    [
      live,
      trader.id,
      sealed,
      JSON.stringify({ "NQ1!": "MNQZ6", BTCUSD: "BTC/USD" }),
      JSON.stringify({ max_quantity: "100.5", allowed_symbols: ["AAPL", "BTC/USD"] }),
      uuidv7(now),
      Uint8Array.from({ length: 256 }, (_, i) => i),
    ],
  );

  await setGlobalKillSwitch(db, true, admin.id, OPERATOR);
  await createSession(db, trader.id, { now, ip: "203.0.113.9", userAgent: "Mozilla/5.0" });
  for (let i = 0; i < 4; i++) await recordLoginFailure(db, "nobody@example.com", now + i);
  await acquireLease(db, `executor:${trader.paperAccountId}`, "instance-a", 60_000);
  await claimTick(db, "housekeeping", new Date(now), "instance-b");
  await upsertBars(db, { userId: trader.id, symbol: "AAPL", timeframe: "1h", source: "csv" }, [
    {
      ts: new Date(now - 3_600_000),
      open: "190.1",
      high: "191.123456",
      low: "189.5",
      close: "190.75",
      volume: "123456.5",
    },
  ]);
  await addWatch(db, { userId: trader.id, symbol: "AAPL", timeframe: "4h" });
  await writeScanSettings(db, trader.id, { minTouches: 4, toleranceMode: "atr", tolerance: 0.25 });
  const line = await insertTrendline(
    db,
    { id: uuidv7(now), userId: trader.id, symbol: "AAPL", timeframe: "4h" },
    {
      kind: "resistance",
      t1: new Date(now - 80 * 3_600_000),
      p1: 191.123456,
      t2: new Date(now - 40 * 3_600_000),
      p2: 190.5,
      slopePerHour: -0.0155864,
      touches: 3,
      touchedAt: [],
      score: 41.5,
    },
    { at: new Date(now), lastBarTs: new Date(now - 3_600_000) },
  );
  await appendTrendlineEvent(db, line!, "touched", {
    at: new Date(now),
    barTs: new Date(now - 3_600_000),
    price: "190.75",
  });

  const channel = await createChannel(db, {
    id: uuidv7(now),
    userId: trader.id,
    kind: "telegram",
    name: TRICKY_TEXT.slice(0, 40),
    secret: Uint8Array.from({ length: 64 }, (_, i) => 255 - i),
    chatId: "-1001234567890",
    events: ["trade.updated", "breaker.opened"],
  });
  await insertDeadLetter(db, {
    id: uuidv7(now),
    channelId: channel.id,
    operator: null,
    userId: trader.id,
    eventType: "trade.updated",
    message: TRICKY_TEXT,
    attempts: 4,
    lastError: "Cannot send to Telegram: 502",
  });
  await insertDeadLetter(db, {
    id: uuidv7(now + 1),
    channelId: null,
    operator: "discord",
    userId: null,
    eventType: "breaker.opened",
    message: "breaker",
    attempts: 1,
    lastError: "Cannot send to Discord: 404 Unknown Webhook",
  });

  // A signal, its dedup row, an entry order with a stop-loss leg created before it (the leg's
  // id sorts first), a fill, the position, the trade and the last price.
  const signal = uuidv7(now);
  await db.query(
    `INSERT INTO signal_dedup (user_id, dedup_key, signal_id, expires_at)
     VALUES ($1, 'tv-123', $2, '2030-01-01 00:00:00.000001+00')`,
    [trader.id, signal],
  );
  await db.query(
    `INSERT INTO signals (id, user_id, account_id, key_id, source, dedup_key, raw_body, ticker,
       symbol, action, side, quantity, order_type, time_in_force, price, take_profit, stop_loss,
       strategy, comment, signal_time, status, received_at, accepted_at, filled_at)
     VALUES ($1, $2, $3, $4, 'tradingview', 'tv-123', $5, 'NASDAQ:AAPL', 'AAPL', 'buy', 'buy',
       0.000000001, 'market', 'day', 123456789012345678901234.567890123456789, 200.10, 180,
       $6::text::jsonb, $7, '2024-03-10 12:34:56.789012+00', 'filled',
       '2024-03-10 12:34:56.789013+00', '2024-03-10 12:34:56.789014+00',
       '2024-03-10 12:34:57.000001+00')`,
    [
      signal,
      trader.id,
      trader.paperAccountId,
      newer,
      '{"key":"[redacted]","ticker":"NASDAQ:AAPL"}',
      JSON.stringify({ name: "breakout", params: { len: 20, mult: 1.5e-7 } }),
      TRICKY_TEXT,
    ],
  );
  const entry = uuidv7(now);
  const leg = uuidv7(now - 5_000);
  await db.query(
    `INSERT INTO orders (id, user_id, account_id, signal_id, parent_id, leg, client_order_id,
       broker_order_id, symbol, side, quantity, order_type, time_in_force, stop_price, status,
       filled_quantity, average_fill_price, status_history, created_at, updated_at)
     VALUES ($1, $3, $4, $5, NULL, 'entry', $6, 'paper-1', 'AAPL', 'buy', 10, 'market', 'day',
       NULL, 'filled', 10, 190.123456, $7::text::jsonb, '2024-03-10 12:34:56.8+00', now()),
            ($2, $3, $4, NULL, $1, 'stop_loss', $8, NULL, 'AAPL', 'sell', 10, 'stop',
       'gtc', 180, 'new', 0, NULL, '[]', now(), now())`,
    [
      entry,
      leg,
      trader.id,
      trader.paperAccountId,
      signal,
      signal,
      JSON.stringify([{ status: "new", at: "2024-03-10T12:34:56.800Z" }, { status: "filled" }]),
      `${signal}-sl`,
    ],
  );
  await db.query(
    `INSERT INTO fills (id, order_id, user_id, account_id, broker_fill_id, symbol, side, quantity,
       price, fee, realized_pnl, filled_at)
     VALUES ($1, $2, $3, $4, 'f-1', 'AAPL', 'buy', 10, 190.123456, 0.01, -0.01,
       '2024-03-10 12:34:57.000001+00')`,
    [uuidv7(now), entry, trader.id, trader.paperAccountId],
  );
  await db.query(
    `INSERT INTO positions (account_id, symbol, user_id, quantity, average_price, realized_pnl,
       last_price, opened_at)
     VALUES ($1, 'AAPL', $2, 10, 190.123456, -0.01, 191, '2024-03-10 12:34:57.000001+00'),
            ($1, 'BTC/USD', $2, -0.5, 65000.5, 0, NULL, NULL)`,
    [trader.paperAccountId, trader.id],
  );
  await db.query(
    `INSERT INTO trades (id, user_id, account_id, symbol, direction, quantity, entry_price,
       stop_loss, fees, status, entry_signal_id, opened_at)
     VALUES ($1, $2, $3, 'AAPL', 'long', 10, 190.123456, 180, 0.01, 'open', $4,
       '2024-03-10 12:34:57.000001+00')`,
    [uuidv7(now), trader.id, trader.paperAccountId, signal],
  );
  await db.query(
    `INSERT INTO last_prices (symbol, price, at) VALUES ('AAPL', 190.123456, now()),
       ('BTC/USD', 65000.50000000, '2024-01-01 00:00:00+00'), ('aapl', 1, now())`,
  );
  await db.query(
    `INSERT INTO queue_jobs (id, type, payload, attempts, backoff_ms, run_at, locked_until, locked_by)
     VALUES ($1, 'notify.telegram', $2::text::jsonb, 2, '{1000,5000,30000}', now(), now(), 'i-1')`,
    [uuidv7(now), JSON.stringify({ chat: -100123, text: TRICKY_TEXT })],
  );
  await db.query(
    `INSERT INTO queue_dead_letters (id, type, payload, attempts, error, created_at)
     VALUES ($1, 'broker.retry', '{"signal_id": null}', 5, $2, '2024-03-10 12:00:00+00')`,
    [uuidv7(now), TRICKY_TEXT],
  );
  await db.query(
    `INSERT INTO journal (id, user_id, signal_id, event, data, at) OVERRIDING SYSTEM VALUE
     VALUES (${BIG_JOURNAL_ID}, $1, $2, 'signal.filled', $3::text::jsonb, '1999-12-31 23:59:59.999999+00')`,
    [
      trader.id,
      signal,
      // As JSON text: the number has more digits than a JavaScript number keeps.
      `{"qty": "0.000000001", "big": 12345678901234567890, "s": ${JSON.stringify(TRICKY_TEXT)}}`,
    ],
  );
}

type Fingerprint = Record<string, { rows: number; md5: string }>;

/**
 * Each table's row count and the md5 of its rows' text in primary-key order — computed by the
 * database itself, independently of the backup's own serializer and checksums.
 */
function fingerprint(db: Db): Promise<Fingerprint> {
  return db.transaction(async (tx) => {
    await tx.query("SET LOCAL TimeZone = 'UTC'");
    await tx.query("SET LOCAL DateStyle = 'ISO, MDY'");
    const tables = await tx.query<{ name: string; pk: string }>(
      `SELECT c.relname AS name,
              (SELECT string_agg(quote_ident(a.attname) ||
                        CASE WHEN a.attcollation <> 0 THEN ' COLLATE "C"' ELSE '' END, ', '
                        ORDER BY array_position(i.indkey::int2[], a.attnum))
               FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                 AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'schema_migrations'
       ORDER BY c.relname COLLATE "C"`,
    );
    const out: Fingerprint = {};
    for (const { name, pk } of tables) {
      assert.ok(pk, `table ${name} has a primary key`);
      const [row] = await tx.query<{ rows: number; md5: string }>(
        `SELECT count(*)::int AS rows, md5(coalesce(string_agg(t::text, '|' ORDER BY ${pk}), ''))
           AS md5
         FROM ${name} t`,
      );
      out[name] = row!;
    }
    return out;
  });
}

function assertFilled(print: Fingerprint) {
  const empty = Object.entries(print).filter(([, t]) => t.rows === 0).map(([name]) => name);
  assert.deepEqual(empty, [], "fill() puts rows in every table (add rows for a new table)");
}

/** After a restore, new rows get ids past every restored one. */
async function assertFreshIds(db: Db) {
  const [journal] = await db.query<{ id: string }>(
    "INSERT INTO journal (event) VALUES ('after.restore') RETURNING id::text AS id",
  );
  assert.equal(BigInt(journal!.id), BigInt(BIG_JOURNAL_ID) + 1n);
  const [max] = await db.query<{ id: string }>("SELECT max(id)::text AS id FROM audit_log");
  await audit(db, { ...OPERATOR, action: "user.created" });
  const [after] = await db.query<{ id: string }>("SELECT max(id)::text AS id FROM audit_log");
  assert.equal(BigInt(after!.id), BigInt(max!.id) + 1n);
}

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "trendedge-backup-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

async function gunzipLines(path: string): Promise<string[]> {
  const stream = (await Deno.open(path)).readable.pipeThrough(new DecompressionStream("gzip"));
  return (await new Response(stream).text()).split("\n").filter((l) => l !== "");
}

async function gzipLines(path: string, lines: string[]): Promise<void> {
  const body = new Blob([lines.map((l) => l + "\n").join("")]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  await Deno.writeFile(path, body);
}

/**
 * Writes `dst` from `src` after `edit` (on the header and row lines); with `rehash`, the
 * header's counts and checksums are recomputed so that only the content is wrong.
 */
async function rewrite(
  src: string,
  dst: string,
  edit: (header: Record<string, unknown>, rows: string[]) => string[],
  rehash: boolean,
) {
  const [first, ...rest] = await gunzipLines(src);
  const header = JSON.parse(first!);
  const rows = edit(header, rest);
  if (rehash) {
    for (const table of header.tables) {
      const hash = createHash("sha256");
      const mine = rows.filter((l) => JSON.parse(l).t === table.name);
      for (const line of mine) hash.update(line + "\n");
      table.rows = mine.length;
      table.sha256 = hash.digest("hex");
    }
  }
  await gzipLines(dst, [JSON.stringify(header), ...rows]);
}

Deno.test("deno task backup and restore copy every table exactly, PostgreSQL to PostgreSQL and to PGlite", async () => {
  await using source = await createTestDb("postgres");
  await using dir = await tempDir();
  await fill(source.db);
  const before = await fingerprint(source.db);
  assertFilled(before);
  const file = `${dir.path}/trendedge.jsonl.gz`;

  const backup = await runTask({ DATABASE_URL: source.url! }, "backup", "--out", file);
  assert.equal(backup.code, 0, backup.stderr);
  assert.match(backup.stdout, /Backing up PostgreSQL \(DATABASE_URL\) to /);
  assert.match(backup.stdout, /journal\s+\d+ rows/);
  assert.match(backup.stdout, /Done: \d+ rows in \d+ tables, schema version \d+/);
  assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600, "only its owner can read it");
  assert.ok(!backup.stdout.includes(source.url!), "the database URL is not printed");

  const target = await createPostgresDatabase();
  try {
    const restored = await runTask({ DATABASE_URL: target.url }, "restore", "--in", file);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /users\s+3 rows\s+verified/);
    assert.match(restored.stdout, /journal\.id continues at 9007199254740994/);
    assert.match(restored.stdout, /counts and checksums match the backup/);
    const db = openPostgres(target.url, { poolSize: 1 });
    try {
      assert.deepEqual(await fingerprint(db), before);
      const [big] = await db.query<{ data: string }>(
        `SELECT data::text AS data FROM journal WHERE id = ${BIG_JOURNAL_ID}`,
      );
      assert.match(big!.data, /12345678901234567890/, "numbers in jsonb keep every digit");
      await assertFreshIds(db);
    } finally {
      await db.close();
    }

    // Restoring again finds data there and refuses, naming the tables.
    const again = await runTask({ DATABASE_URL: target.url }, "restore", "--in", file);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /Cannot restore into a database that has data: .*users/);
    assert.match(again.stderr, /Nothing was restored/);
  } finally {
    await target.drop();
  }

  const lite = `${dir.path}/data`;
  const restored = await runTask({ DATA_DIR: lite }, "restore", "--in", file);
  assert.equal(restored.code, 0, restored.stderr);
  assert.match(restored.stdout, /into PGlite at /);
  const db = await openDb({ dataDir: pgliteDir(lite) });
  try {
    assert.deepEqual(await fingerprint(db), before);
    await assertFreshIds(db);
  } finally {
    await db.close();
  }
});

Deno.test("a backup of PGlite restores into PostgreSQL with identical checksums", async () => {
  await using source = await createTestDb("pglite");
  await using target = await createTestDb("postgres", { migrate: false });
  await using dir = await tempDir();
  await fill(source.db);
  const before = await fingerprint(source.db);
  assertFilled(before);
  const file = `${dir.path}/lite.jsonl.gz`;
  const { header } = await writeBackup(source.db, file, { appVersion: "test" });
  assert.equal(header.engine, "pglite");
  assert.equal(header.schema_version, (await loadMigrations()).at(-1)!.version);
  assert.ok(!header.tables.some((t) => t.name === "schema_migrations"));

  const result = await restoreBackup(target.db, file);
  assert.equal(result.engine, "postgres");
  assert.deepEqual(await fingerprint(target.db), before);
  assert.deepEqual(
    Object.fromEntries(result.tables.map((t) => [t.name, t.rows])),
    Object.fromEntries(Object.entries(before).map(([name, t]) => [name, t.rows])),
  );
  await assertFreshIds(target.db);
  await assert.rejects(restoreBackup(target.db, file), RestoreRefusedError);
  await assert.rejects(
    writeBackup(source.db, file, { appVersion: "test" }),
    /the file exists already/,
    "a backup never overwrites a file",
  );
});

Deno.test("a truncated, corrupted or edited backup fails loudly and writes nothing", async () => {
  await using source = await createTestDb("pglite");
  await using target = await createTestDb("pglite", { migrate: false });
  await using dir = await tempDir();
  await fill(source.db);
  const good = `${dir.path}/good.jsonl.gz`;
  await writeBackup(source.db, good, { appVersion: "test" });
  const bytes = await Deno.readFile(good);

  const cases: Array<[string, () => Promise<void>, RegExp]> = [
    [
      "truncated",
      () => Deno.writeFile(`${dir.path}/x`, bytes.slice(0, bytes.length >> 1)),
      /truncated or corrupted/,
    ],
    [
      "cut before the gzip trailer",
      () => Deno.writeFile(`${dir.path}/x`, bytes.slice(0, -4)),
      /truncated or corrupted/,
    ],
    // The compressed bytes differ from run to run (the rows hold random ids), so which check
    // meets the flipped byte first differs too: the gzip stream or its CRC, the header, a line
    // that no longer parses or no longer has its table's shape, or a table's count or checksum
    // (flipping each of 400 offsets of one file met every one of these, and never no error).
    // Each is a clear refusal; what matters is that one always comes and nothing is written.
    [
      "a flipped byte",
      async () => {
        const copy = bytes.slice();
        copy[copy.length >> 1]! ^= 0x55;
        await Deno.writeFile(`${dir.path}/x`, copy);
      },
      /corrupt|checksum|not JSON|truncated|unknown table|columns differ|neither a string nor null|not an object|not together|cut off/,
    ],
    ["not gzip", () => Deno.writeTextFile(`${dir.path}/x`, "hello\n"), /Cannot read backup/],
    ["empty", () => Deno.writeFile(`${dir.path}/x`, new Uint8Array()), /Cannot read backup/],
    [
      "another format",
      () => gzipLines(`${dir.path}/x`, ['{"format":"pg_dump"}']),
      /not a trendedge backup/,
    ],
    [
      "a row removed",
      () =>
        rewrite(
          good,
          `${dir.path}/x`,
          (_, rows) => rows.filter((l) => !l.includes('"t":"fills"')),
          false,
        ),
      /table "fills" has 0 row\(s\), the header says 1/,
    ],
    [
      "a value edited",
      () =>
        rewrite(
          good,
          `${dir.path}/x`,
          (_, rows) => rows.map((l) => l.replace("190.123456", "190.123457")),
          false,
        ),
      /checksum of table "\w+" differs/,
    ],
    ["a line cut off", async () => {
      const lines = await gunzipLines(good);
      const body = lines.join("\n").slice(0, -10); // no final newline, last line incomplete
      await Deno.writeFile(
        `${dir.path}/x`,
        new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")),
      );
    }, /cut off|not JSON/],
  ];
  for (const [name, make, message] of cases) {
    await make();
    await assert.rejects(restoreBackup(target.db, `${dir.path}/x`), (error: Error) => {
      assert.ok(error instanceof BackupFileError, `${name}: ${error.stack}`);
      assert.match(error.message, message, name);
      return true;
    });
    assert.deepEqual(await describeTables(target.db), [], `${name}: nothing was created`);
  }

  // Rows that break a foreign key get past the file checks but not the load: all rolled back.
  await rewrite(good, `${dir.path}/fk`, (_, rows) =>
    rows.map((line) => {
      const { t, r } = JSON.parse(line);
      if (t === "fills") r.order_id = "00000000-0000-7000-8000-000000000000";
      return JSON.stringify({ t, r });
    }), true);
  await assert.rejects(
    restoreBackup(target.db, `${dir.path}/fk`),
    /break foreign key "fills_order_id_fkey"/,
  );
  const after = await fingerprint(target.db);
  assert.ok(Object.keys(after).length > 0, "the schema was migrated");
  assert.deepEqual(Object.values(after).filter((t) => t.rows > 0), [], "no row was kept");
});

Deno.test("restore refuses a backup of a newer or different schema", async () => {
  await using source = await createTestDb("pglite");
  await using target = await createTestDb("pglite", { migrate: false });
  await using dir = await tempDir();
  await fill(source.db);
  const good = `${dir.path}/good.jsonl.gz`;
  await writeBackup(source.db, good, { appVersion: "test" });

  await rewrite(good, `${dir.path}/newer`, (header, rows) => {
    const migrations = header.migrations as Array<Record<string, unknown>>;
    migrations.push({ version: 9999, name: "from_the_future", checksum: "0".repeat(64) });
    header.schema_version = 9999;
    return rows;
  }, false);
  await assert.rejects(
    restoreBackup(target.db, `${dir.path}/newer`),
    /schema is version 9999, newer than this release's migrations/,
  );
  await rewrite(good, `${dir.path}/edited`, (header, rows) => {
    (header.migrations as Array<Record<string, unknown>>)[0]!.checksum = "f".repeat(64);
    return rows;
  }, false);
  await assert.rejects(
    restoreBackup(target.db, `${dir.path}/edited`),
    (error: Error) =>
      error instanceof RestoreRefusedError && /differs between the backup/.test(error.message),
  );
  assert.deepEqual(await describeTables(target.db), []);
});

Deno.test("restore into an empty database migrated past the backup's version migrates it down first", async () => {
  const migrations = await loadMigrations();
  const older = migrations.slice(0, -1);
  await using source = await createTestDb("postgres", { migrate: false });
  await using target = await createTestDb("pglite");
  await using dir = await tempDir();
  await migrateUp(source.db, { migrations: older });
  await source.db.query(
    "INSERT INTO users (id, email, password_hash) VALUES ($1, 'old@example.com', 'x')",
    [uuidv7()],
  );
  const file = `${dir.path}/old.jsonl.gz`;
  await writeBackup(source.db, file, { appVersion: "old" });
  const steps: string[] = [];
  const result = await restoreBackup(target.db, file, {
    onMigrate: (s) => steps.push(`${s.direction} ${s.version}`),
  });
  assert.deepEqual(steps, [`down ${migrations.at(-1)!.version}`]);
  assert.equal(result.header.schema_version, older.at(-1)!.version);
  assert.deepEqual(await fingerprint(target.db), await fingerprint(source.db));
});

Deno.test("deno task restore explains bad arguments and a missing or broken file", async () => {
  await using dir = await tempDir();
  const usage = await runTask({}, "restore");
  assert.equal(usage.code, 64);
  assert.match(usage.stderr, /Usage: deno task restore --in/);
  const missing = await runTask({}, "restore", "--in", `${dir.path}/nope.jsonl.gz`);
  assert.equal(missing.code, 66);
  assert.match(missing.stderr, /Cannot restore: ".*nope\.jsonl\.gz" does not exist/);
  const backupUsage = await runTask({}, "backup", "--output", "x");
  assert.equal(backupUsage.code, 64);
  assert.match(backupUsage.stderr, /Usage: deno task backup/);

  await Deno.writeTextFile(`${dir.path}/broken.jsonl.gz`, "not a backup");
  const target = await createPostgresDatabase();
  try {
    const broken = await runTask(
      { DATABASE_URL: target.url },
      "restore",
      "--in",
      `${dir.path}/broken.jsonl.gz`,
    );
    assert.equal(broken.code, 65);
    assert.match(broken.stderr, /Cannot read backup ".*broken\.jsonl\.gz"/);
    assert.match(broken.stderr, /Nothing was restored/);
  } finally {
    await target.drop();
  }
});
