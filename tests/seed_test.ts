/**
 * `deno task seed` as a developer runs it, on a fresh PGlite data dir and a fresh PostgreSQL
 * database, read back through the real HTTP API.
 */
import assert from "node:assert/strict";
import { type Db, openDb } from "../db/client.ts";
import { pgliteDir } from "../db/paths.ts";
import { DEMO_INSTRUMENTS } from "../lib/demo_market.ts";
import { createTestApp } from "./_app.ts";
import { createPostgresDatabase } from "./_db.ts";
import { accessTokenFor } from "./_fixtures.ts";
import { runTask } from "./_process.ts";

const JWT_SECRET = "seed-test-jwt-secret-0123456789abcdef";
const DEV = { APP_ENV: "development" };

// deno-lint-ignore no-explicit-any
type Json = any;

/** Every row of a paginated list endpoint. */
async function all(get: (path: string) => Promise<Json>, path: string): Promise<Json[]> {
  const rows: Json[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(`${path}${sep}limit=100${cursor ? `&cursor=${cursor}` : ""}`);
    rows.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}

/** Reads the demo user's data through the API and checks that it hangs together. */
async function checkThroughApi(db: Db, email: string) {
  const [user] = await db.query<{ id: string; role: "admin" | "trader" }>(
    "SELECT id, role FROM users WHERE email = $1",
    [email],
  );
  assert.ok(user, "the demo user exists");
  await using t = createTestApp({ db, env: { JWT_SECRET } });
  const { token } = await accessTokenFor(db, user, { secret: JWT_SECRET, now: t.clock.now() });
  const get = async (path: string) => {
    const res = await t.app.request(path, { headers: { Authorization: `Bearer ${token}` } });
    const body = await res.json();
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(body)}`);
    return body;
  };

  const signals = await all(get, "/api/v1/signals");
  const orders = await all(get, "/api/v1/orders");
  const trades = await all(get, "/api/v1/trades");
  const positions = (await get("/api/v1/positions")).data as Json[];
  assert.ok(signals.length >= 20, `signals: ${signals.length}`);
  assert.ok(orders.length >= 10, `orders: ${orders.length}`);

  const reasons = signals.filter((s) => s.status === "rejected").map((s) => String(s.reason));
  assert.ok(reasons.some((r) => /invalid fields/.test(r)), reasons.join(" | "));
  assert.ok(reasons.some((r) => /max_order_quantity|quantity/i.test(r)), reasons.join(" | "));
  assert.ok(reasons.some((r) => /TSLA/.test(r)), reasons.join(" | "));

  const byId = new Map(signals.map((s) => [s.id, s]));
  for (const o of orders.filter((o) => o.status === "filled")) {
    assert.equal(byId.get(o.signal_id)?.status, "filled", `the signal of order ${o.id}`);
  }
  const filled = signals.filter((s) => s.status === "filled");
  for (const s of filled) {
    const received = Date.parse(s.received_at);
    const done = Date.parse(s.filled_at ?? s.finished_at);
    assert.ok(done >= received && done - received < 1_000, `latency of ${s.id}`);
  }
  const one = await get(`/api/v1/orders/${orders.find((o) => o.status === "filled").id}`);
  assert.equal(one.fills.length, 1);

  const closed = trades.filter((tr) => tr.status === "closed");
  assert.ok(closed.length >= 3, `closed trades: ${closed.length}`);
  for (const tr of closed) {
    const sign = tr.direction === "long" ? 1 : -1;
    const gross = sign * Number(tr.quantity) * (Number(tr.exit_price) - Number(tr.entry_price));
    assert.ok(
      Math.abs(Number(tr.realized_pnl) - (gross - Number(tr.fees))) < 1e-6,
      `trade ${tr.id}: ${JSON.stringify(tr)}`,
    );
  }
  const [ledger] = await db.query<{ fills: string; positions: string }>(
    `SELECT (SELECT sum(realized_pnl) FROM fills WHERE user_id = $1)::text AS fills,
            (SELECT sum(realized_pnl) FROM positions WHERE user_id = $1)::text AS positions`,
    [user.id],
  );
  assert.ok(
    Math.abs(Number(ledger!.fills) - Number(ledger!.positions)) < 1e-6,
    JSON.stringify(ledger),
  );

  assert.ok(positions.length >= 1, "some positions are open");
  assert.ok(
    positions.some((p) =>
      Number(p.quantity) * (Number(p.last_price) - Number(p.average_price)) !== 0
    ),
    "an open position shows unrealized P&L",
  );
  for (const p of positions) {
    const open = trades.filter((tr) => tr.status === "open" && tr.symbol === p.symbol);
    assert.equal(open.length, 1, `one open trade for ${p.symbol}`);
  }

  const lines = (await get("/api/v1/trendlines")).data as Json[];
  const watched = (await get("/api/v1/watchlists")).data as Json[];
  for (const { symbol } of DEMO_INSTRUMENTS) {
    assert.ok(watched.some((w) => w.symbol === symbol), `${symbol} is watched`);
    const frames: Array<{ timeframe: string }> = await db.query(
      `SELECT timeframe, count(*)::int AS n FROM bars WHERE user_id = $1 AND symbol = $2
       GROUP BY timeframe`,
      [user.id, symbol],
    );
    assert.deepEqual(frames.map((b) => b.timeframe).sort(), ["1d", "1h"], symbol);
  }
  // The detector is the real one over random bars: most symbols get lines, not always all.
  const withLines = DEMO_INSTRUMENTS.filter(({ symbol }) => lines.some((l) => l.symbol === symbol));
  assert.ok(withLines.length >= 3 && lines.length >= 5, JSON.stringify(lines.map((l) => l.symbol)));
  return user.id;
}

/** A fingerprint of everything a run could write. */
async function fingerprint(db: Db): Promise<string> {
  const tables = [
    "users",
    "webhook_keys",
    "broker_accounts",
    "signals",
    "orders",
    "fills",
    "positions",
    "trades",
    "journal",
    "audit_log",
    "bars",
    "watchlists",
    "trendlines",
    "trendline_events",
  ];
  const rows = await db.query<{ counts: string }>(
    `SELECT concat_ws(',', ${
      tables.map((t) => `(SELECT count(*) FROM ${t})`).join(", ")
    }) AS counts, (SELECT max(updated_at) FROM users)::text AS users`,
  );
  return JSON.stringify(rows[0]);
}

function seedOutput(stdout: string) {
  const key = stdout.trimEnd().split("\n").at(-1) ?? "";
  assert.match(key, /^whk_[A-Za-z0-9_-]{43}$/, stdout);
  assert.match(stdout, /email: demo@trendedge\.local/);
  assert.match(stdout, /password: demo-password-1234/);
  return /demo user ([0-9a-f-]{36})/.exec(stdout)![1]!;
}

Deno.test("seed fills a fresh PGlite data dir, and a second run changes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "trendedge-seed-" });
  try {
    const env = { ...DEV, DATA_DIR: dir };
    const first = await runTask(env, "seed", "--days", "10");
    assert.equal(first.code, 0, first.stderr);
    seedOutput(first.stdout);
    assert.match(first.stdout, /role: admin/, "the first user is the admin");

    let before: string;
    let db = await openDb({ dataDir: pgliteDir(dir) });
    try {
      await checkThroughApi(db, "demo@trendedge.local");
      before = await fingerprint(db);
    } finally {
      await db.close();
    }

    const second = await runTask(env, "seed");
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /exists already .*nothing was changed/);
    assert.doesNotMatch(second.stdout, /whk_/);
    db = await openDb({ dataDir: pgliteDir(dir) });
    try {
      assert.equal(await fingerprint(db), before);
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("seed on PostgreSQL: refuses production, seeds, resets only its own user", async () => {
  const { url, drop } = await createPostgresDatabase();
  try {
    const env = { ...DEV, DATABASE_URL: url };
    const prod = await runTask(
      {
        APP_ENV: "production",
        DATABASE_URL: url,
        JWT_SECRET: "0123456789abcdef0123456789abcdef-prod",
        ENCRYPTION_KEY: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        OPERATOR_API_KEY: "0123456789abcdef0123456789abcdef-operator",
      },
      "seed",
    );
    assert.equal(prod.code, 78, prod.stderr);
    assert.match(prod.stderr, /Cannot seed: APP_ENV is "production"/);

    const bad = await runTask(env, "seed", "--days", "0");
    assert.equal(bad.code, 64);

    const other = await runTask(
      env,
      "user:create",
      "--email",
      "real@example.com",
      "--password",
      "a real passphrase",
    );
    assert.equal(other.code, 0, other.stderr);

    const first = await runTask(env, "seed", "--days", "7", "--seed", "7");
    assert.equal(first.code, 0, first.stderr);
    const firstId = seedOutput(first.stdout);
    assert.match(first.stdout, /role: trader/, "not the first user: a trader");

    const refused = await runTask(env, "seed", "--email", "real@example.com", "--reset");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Cannot reset "real@example\.com": this user was not created/);

    const reset = await runTask(env, "seed", "--days", "7", "--seed", "7", "--reset");
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /Reset and seeded/);
    const secondId = seedOutput(reset.stdout);
    assert.notEqual(secondId, firstId);

    const db = await openDb({ url, poolSize: 2 });
    try {
      assert.equal(await checkThroughApi(db, "demo@trendedge.local"), secondId);
      const [left] = await db.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM signals WHERE user_id = $1)
              + (SELECT count(*) FROM bars WHERE user_id = $1)
              + (SELECT count(*) FROM signal_dedup WHERE user_id = $1)
              + (SELECT count(*) FROM broker_accounts WHERE user_id = $1) AS n`,
        [firstId],
      );
      assert.equal(Number(left!.n), 0, "the old demo user's data is gone");
      const [real] = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM users WHERE email = 'real@example.com'",
      );
      assert.equal(real!.n, 1, "the other user is untouched");
    } finally {
      await db.close();
    }
  } finally {
    await drop();
  }
});
