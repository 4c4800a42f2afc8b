import assert from "node:assert/strict";
import type { Db } from "../db/client.ts";
import { createUser } from "../db/users.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestApp } from "../tests/_app.ts";
import { createTestDb, ENGINES, type TestDb } from "../tests/_db.ts";
import { accessTokenFor } from "../tests/_fixtures.ts";
import type { ErrorBody } from "./_errors.ts";
import { api } from "./api.ts";
import { auth } from "./auth.ts";

const T0 = Date.UTC(2026, 0, 5, 14, 0);
const FAST = { iterations: 1000 };

interface Trader {
  id: string;
  token: string;
  paper: string;
  /** A second account with an alias only this trader has. */
  other: string;
  otherAlias: string;
}

/** A test app with the auth and read API mounted, and two traders (Ann is the admin). */
async function setup(t: TestDb) {
  const { app, config, clock } = createTestApp({ db: t.db });
  app.route("/", auth);
  app.route("/", api);
  const trader = async (name: string): Promise<Trader> => {
    const user = await createUser(t.db, {
      email: `${name}@example.com`,
      password: "0123456789",
    }, FAST);
    const other = uuidv7();
    const otherAlias = `${name}-alpaca`;
    await t.db.query(
      `INSERT INTO broker_accounts (id, user_id, alias, broker) VALUES ($1, $2, $3, 'alpaca')`,
      [other, user.id, otherAlias],
    );
    const { token } = await accessTokenFor(t.db, user, {
      secret: config.jwtSecret,
      now: clock.now(),
    });
    return { id: user.id, token, paper: user.paperAccountId, other, otherAlias };
  };
  const ann = await trader("ann");
  const bob = await trader("bob");
  const get = async (who: Trader, path: string) => {
    const res = await app.request(path, { headers: { Authorization: `Bearer ${who.token}` } });
    return { status: res.status, body: await res.json() };
  };
  const post = async (who: Trader, path: string, body: unknown) => {
    const res = await app.request(path, {
      method: "POST",
      headers: { Authorization: `Bearer ${who.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  return { app, ann, bob, get, post };
}

interface SignalFixture {
  id?: string;
  account?: string | null;
  alias?: string | null;
  symbol?: string;
  status?: string;
  receivedAt?: number;
}

async function insertSignal(db: Db, userId: string, f: SignalFixture = {}): Promise<string> {
  const id = f.id ?? uuidv7(f.receivedAt ?? T0);
  await db.query(
    `INSERT INTO signals (id, user_id, account_id, source, dedup_key, raw_body, account_alias,
       ticker, symbol, action, side, quantity, price, status, received_at, strategy)
     VALUES ($1, $2, $3, 'tradingview', $8, '{"key":"***"}', $4, $5, $5, 'buy', 'buy', 1.5,
       21000.25, $6, $7, '{"name":"breakout"}'::jsonb)`,
    [
      id,
      userId,
      f.account ?? null,
      f.alias ?? "paper",
      f.symbol ?? "MNQ",
      f.status ?? "filled",
      new Date(f.receivedAt ?? T0),
      `dedup-${id}`,
    ],
  );
  return id;
}

async function insertOrder(
  db: Db,
  userId: string,
  f: { account: string; signal?: string; symbol?: string; status?: string; at?: number },
): Promise<string> {
  const id = uuidv7(f.at ?? T0);
  await db.query(
    `INSERT INTO orders (id, user_id, account_id, signal_id, client_order_id, symbol, side,
       quantity, order_type, time_in_force, status, filled_quantity, average_fill_price,
       created_at, updated_at)
     VALUES ($1, $2, $3, $4, $8, $5, 'buy', 2, 'market', 'day', $6, 2, 100.5, $7, $7)`,
    [
      id,
      userId,
      f.account,
      f.signal ?? null,
      f.symbol ?? "MNQ",
      f.status ?? "filled",
      new Date(f.at ?? T0),
      `coid-${id}`,
    ],
  );
  return id;
}

/** Ann's and Bob's records: a signal with journal, an order with a fill, positions, trades. */
async function seed(db: Db, who: Trader, symbol: string) {
  const signal = await insertSignal(db, who.id, { account: who.paper, symbol });
  await db.query(
    `INSERT INTO journal (user_id, signal_id, event, data) VALUES
       ($1, $2, 'signal.accepted', '{}'), ($1, $2, 'signal.filled', '{"price":"100.5"}')`,
    [who.id, signal],
  );
  const order = await insertOrder(db, who.id, { account: who.paper, signal, symbol });
  await db.query(
    `INSERT INTO fills (id, order_id, user_id, account_id, broker_fill_id, symbol, side, quantity,
       price, fee, filled_at)
     VALUES ($1, $2, $3, $4, 'f1', $5, 'buy', 2, 100.5, 0.25, $6)`,
    [uuidv7(T0), order, who.id, who.paper, symbol, new Date(T0)],
  );
  await db.query(
    `INSERT INTO positions (account_id, symbol, user_id, quantity, average_price, opened_at)
     VALUES ($1, $2, $3, 2, 100.5, $4), ($1, 'FLAT', $3, 0, 0, $4)`,
    [who.paper, symbol, who.id, new Date(T0)],
  );
  await db.query(
    `INSERT INTO trades (id, user_id, account_id, symbol, direction, quantity, entry_price,
       status, opened_at, entry_signal_id)
     VALUES ($1, $2, $3, $4, 'long', 2, 100.5, 'open', $5, $6),
            ($7, $2, $3, $4, 'long', 1, 99, 'closed', $8, NULL)`,
    [
      uuidv7(T0),
      who.id,
      who.paper,
      symbol,
      new Date(T0),
      signal,
      uuidv7(T0 - 86_400_000),
      new Date(T0 - 86_400_000),
    ],
  );
  return { signal, order };
}

function assertError(res: { status: number; body: ErrorBody }, status: number, code: string) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error.code, code);
}

for (const engine of ENGINES) {
  Deno.test(`read API shows each trader only their own records (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const { ann, bob, get } = await setup(t);
    const annRows = await seed(t.db, ann, "MNQ");
    const bobRows = await seed(t.db, bob, "MES");

    for (const [who, rows, symbol] of [[ann, annRows, "MNQ"], [bob, bobRows, "MES"]] as const) {
      const signals = await get(who, "/api/v1/signals");
      assert.equal(signals.status, 200);
      assert.deepEqual(signals.body.data.map((s: { id: string }) => s.id), [rows.signal]);
      assert.equal(signals.body.next_cursor, null);
      const orders = await get(who, "/api/v1/orders");
      assert.deepEqual(orders.body.data.map((o: { id: string }) => o.id), [rows.order]);
      const positions = await get(who, "/api/v1/positions");
      assert.deepEqual(
        positions.body.data.map((p: { account: string; symbol: string }) => [p.account, p.symbol]),
        [["paper", symbol]],
        "only non-zero positions",
      );
      const trades = await get(who, "/api/v1/trades");
      assert.equal(trades.body.data.length, 2);
      assert.ok(trades.body.data.every((tr: { symbol: string }) => tr.symbol === symbol));
      assert.equal((await get(who, `/api/v1/signals/${rows.signal}`)).status, 200);
      assert.equal((await get(who, `/api/v1/orders/${rows.order}`)).status, 200);
    }

    // Another user's records do not exist, as far as the caller can tell.
    for (const [who, other] of [[ann, bobRows], [bob, annRows]] as const) {
      assertError(await get(who, `/api/v1/signals/${other.signal}`), 404, "NOT_FOUND");
      assertError(await get(who, `/api/v1/orders/${other.order}`), 404, "NOT_FOUND");
    }
    assertError(await get(ann, "/api/v1/signals/not-a-uuid"), 404, "NOT_FOUND");
    assert.deepEqual((await get(ann, "/api/v1/signals?account=bob-alpaca")).body.data, []);
    assert.deepEqual((await get(ann, "/api/v1/orders?symbol=MES")).body.data, []);
    assert.deepEqual((await get(ann, "/api/v1/trades?symbol=MES")).body.data, []);
  });

  Deno.test(`kill switch: owners switch their accounts, only an admin the global one (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const { ann, bob, get, post } = await setup(t);

    assert.deepEqual((await get(bob, "/api/v1/kill-switch")).body, {
      global: false,
      accounts: { "bob-alpaca": false, paper: false },
    });

    // Bob switches his paper account; Ann's account of the same alias is untouched.
    const bobOn = await post(bob, "/api/v1/kill-switch", { enabled: true, account: "paper" });
    assert.equal(bobOn.status, 200);
    assert.deepEqual(bobOn.body, { global: false, accounts: { "bob-alpaca": false, paper: true } });
    assert.deepEqual((await get(ann, "/api/v1/kill-switch")).body.accounts, {
      "ann-alpaca": false,
      paper: false,
    });

    // Another user's alias is not found, and nothing changes.
    assertError(
      await post(ann, "/api/v1/kill-switch", { enabled: true, account: "bob-alpaca" }),
      404,
      "NOT_FOUND",
    );
    assert.equal((await get(bob, "/api/v1/kill-switch")).body.accounts["bob-alpaca"], false);

    // The global switch takes an admin.
    assertError(await post(bob, "/api/v1/kill-switch", { enabled: true }), 403, "FORBIDDEN");
    const globalOn = await post(ann, "/api/v1/kill-switch", { enabled: true });
    assert.equal(globalOn.status, 200);
    assert.equal(globalOn.body.global, true);
    assert.equal((await get(bob, "/api/v1/kill-switch")).body.global, true);
    assert.equal((await post(ann, "/api/v1/kill-switch", { enabled: false })).body.global, false);

    assertError(
      await post(ann, "/api/v1/kill-switch", { enabled: "yes" }),
      400,
      "VALIDATION_ERROR",
    );
    assertError(
      await post(ann, "/api/v1/kill-switch", { enabled: true, account: "Not An Alias" }),
      400,
      "VALIDATION_ERROR",
    );

    const journal = await t.db.query<{ user_id: string; account_id: string | null; data: unknown }>(
      "SELECT user_id, account_id, data FROM journal WHERE event = 'kill_switch.changed' ORDER BY id",
    );
    assert.deepEqual(journal.map((j) => [j.user_id, j.account_id, j.data]), [
      [bob.id, bob.paper, { scope: "account", account: "paper", enabled: true, previous: false }],
      [ann.id, null, { scope: "global", enabled: true, previous: false }],
      [ann.id, null, { scope: "global", enabled: false, previous: true }],
    ]);
  });

  Deno.test(`GET /api/v1/signals pages 120 signals 50, 50, 20 without gaps or repeats (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const { ann, bob, get } = await setup(t);
    const ids = new Set<string>();
    for (let i = 0; i < 120; i++) {
      // Three signals share each timestamp (down to the microsecond), so ties must break by id.
      const receivedAt = T0 + Math.floor(i / 3) * 1000;
      ids.add(await insertSignal(t.db, ann.id, { account: ann.paper, receivedAt }));
    }
    await insertSignal(t.db, bob.id, { account: bob.paper });

    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? "" : `&cursor=${cursor}`;
      const page = await get(ann, `/api/v1/signals?limit=50${query}`);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      sizes.push(page.body.data.length);
      seen.push(...page.body.data.map((s: { id: string }) => s.id));
      cursor = page.body.next_cursor;
      if (cursor !== null) assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    } while (cursor !== null && sizes.length < 10);
    assert.deepEqual(sizes, [50, 50, 20]);
    assert.equal(new Set(seen).size, 120, "no duplicates");
    assert.deepEqual(new Set(seen), ids, "no gaps, and nothing of Bob's");
    const times = (await t.db.query<{ id: string; received_at: Date }>(
      "SELECT id, received_at FROM signals WHERE user_id = $1",
      [ann.id],
    )).reduce((m, r) => m.set(r.id, r.received_at.getTime()), new Map<string, number>());
    for (let i = 1; i < seen.length; i++) {
      assert.ok(times.get(seen[i - 1]!)! >= times.get(seen[i]!)!, "newest first");
    }

    const defaults = await get(ann, "/api/v1/signals");
    assert.equal(defaults.body.data.length, 50);
    assert.equal((await get(ann, "/api/v1/signals?limit=200")).body.data.length, 120);
  });
}

Deno.test("the signal cursor keeps microsecond timestamps exact", async () => {
  await using t = await createTestDb("pglite");
  const { ann, get } = await setup(t);
  // Three signals within one millisecond: a cursor rounded to ms would skip or repeat one.
  const ids: string[] = [];
  for (const micros of ["003", "002", "001"]) {
    const id = await insertSignal(t.db, ann.id, { account: ann.paper });
    await t.db.query("UPDATE signals SET received_at = $2::timestamptz WHERE id = $1", [
      id,
      `2026-01-05T14:00:00.123${micros}Z`,
    ]);
    ids.push(id);
  }
  const seen: string[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 5 && (i === 0 || cursor !== null); i++) {
    const query: string = cursor === null ? "" : `&cursor=${cursor}`;
    const page = await get(ann, `/api/v1/signals?limit=1${query}`);
    seen.push(...page.body.data.map((s: { id: string }) => s.id));
    cursor = page.body.next_cursor;
  }
  assert.deepEqual(seen, ids);
});

Deno.test("GET /api/v1/signals filters by status, symbol, account and time", async () => {
  await using t = await createTestDb("pglite");
  const { ann, get } = await setup(t);
  const a = await insertSignal(t.db, ann.id, {
    account: ann.paper,
    symbol: "MNQ",
    status: "filled",
    receivedAt: T0,
  });
  const b = await insertSignal(t.db, ann.id, {
    account: ann.other,
    alias: ann.otherAlias,
    symbol: "BTC/USD",
    status: "rejected",
    receivedAt: T0 + 60_000,
  });
  const c = await insertSignal(t.db, ann.id, {
    account: null,
    alias: "gone",
    symbol: "MNQ",
    status: "rejected",
    receivedAt: T0 + 120_000,
  });
  const ids = async (query: string) =>
    (await get(ann, `/api/v1/signals?${query}`)).body.data.map((s: { id: string }) => s.id);
  assert.deepEqual(await ids(""), [c, b, a]);
  assert.deepEqual(await ids("status=rejected"), [c, b]);
  assert.deepEqual(await ids("symbol=MNQ"), [c, a]);
  assert.deepEqual(await ids(`symbol=${encodeURIComponent("BTC/USD")}`), [b]);
  assert.deepEqual(await ids("account=ann-alpaca"), [b]);
  assert.deepEqual(await ids("account=gone"), [c], "the alias as sent when no account matched");
  const since = new Date(T0 + 60_000).toISOString();
  const until = new Date(T0 + 120_000).toISOString();
  assert.deepEqual(await ids(`since=${since}`), [c, b]);
  assert.deepEqual(await ids(`until=${until}`), [b, a]);
  assert.deepEqual(await ids(`since=${since}&until=${until}`), [b]);
  assert.deepEqual(await ids(`since=${encodeURIComponent("2026-01-05T15:01:00+01:00")}`), [c, b]);
  assert.deepEqual(await ids("status=filled&limit=1"), [a]);

  for (
    const bad of [
      "limit=0",
      "limit=201",
      "limit=ten",
      "status=lost",
      "since=yesterday",
      "cursor=not-a-cursor",
      `cursor=${btoa('["2026-01-05", "x"]')}`,
      "account=Bad%20Alias",
    ]
  ) {
    const res = await get(ann, `/api/v1/signals?${bad}`);
    assertError(res, 400, "VALIDATION_ERROR");
  }
});

Deno.test("GET /api/v1/signals/{id} returns the signal with its journal and orders", async () => {
  await using t = await createTestDb("pglite");
  const { ann, get } = await setup(t);
  const { signal, order } = await seed(t.db, ann, "MNQ");
  const res = await get(ann, `/api/v1/signals/${signal}`);
  assert.equal(res.status, 200);
  const s = res.body;
  assert.equal(s.id, signal);
  assert.equal(s.account, "paper");
  assert.equal(s.account_id, ann.paper);
  assert.equal(s.quantity, "1.5", "numerics stay strings");
  assert.equal(s.price, "21000.25");
  assert.equal(s.received_at, new Date(T0).toISOString());
  assert.equal(s.accepted_at, null);
  assert.deepEqual(s.strategy, { name: "breakout" });
  assert.equal(s.raw_body, '{"key":"***"}');
  assert.deepEqual(s.journal.map((j: { event: string }) => j.event), [
    "signal.accepted",
    "signal.filled",
  ]);
  assert.deepEqual(s.journal[1].data, { price: "100.5" });
  assert.match(s.journal[0].at, /^\d{4}-\d{2}-\d{2}T.*Z$/);
  assert.deepEqual(s.orders.map((o: { id: string }) => o.id), [order]);
  assert.equal(s.orders[0].quantity, "2");
});

Deno.test("GET /api/v1/orders filters and GET /api/v1/orders/{id} returns the fills", async () => {
  await using t = await createTestDb("pglite");
  const { ann, get } = await setup(t);
  const { order } = await seed(t.db, ann, "MNQ");
  const open = await insertOrder(t.db, ann.id, {
    account: ann.other,
    symbol: "AAPL",
    status: "new",
    at: T0 + 1000,
  });
  const ids = async (query: string) =>
    (await get(ann, `/api/v1/orders?${query}`)).body.data.map((o: { id: string }) => o.id);
  assert.deepEqual(await ids(""), [open, order]);
  assert.deepEqual(await ids("status=new"), [open]);
  assert.deepEqual(await ids("symbol=MNQ"), [order]);
  assert.deepEqual(await ids("account=ann-alpaca"), [open]);
  const page = await get(ann, "/api/v1/orders?limit=1");
  assert.deepEqual(page.body.data.map((o: { id: string }) => o.id), [open]);
  const next = await get(ann, `/api/v1/orders?limit=1&cursor=${page.body.next_cursor}`);
  assert.deepEqual(next.body.data.map((o: { id: string }) => o.id), [order]);
  assert.equal(next.body.next_cursor, null);
  assertError(await get(ann, "/api/v1/orders?status=done"), 400, "VALIDATION_ERROR");

  const detail = await get(ann, `/api/v1/orders/${order}`);
  assert.equal(detail.status, 200);
  assert.equal(detail.body.account, "paper");
  assert.equal(detail.body.average_fill_price, "100.5");
  assert.deepEqual(detail.body.status_history, []);
  assert.equal(detail.body.fills.length, 1);
  assert.deepEqual(
    { ...detail.body.fills[0], id: undefined },
    {
      id: undefined,
      order_id: order,
      broker_fill_id: "f1",
      symbol: "MNQ",
      side: "buy",
      quantity: "2",
      price: "100.5",
      fee: "0.25",
      filled_at: new Date(T0).toISOString(),
    },
  );
});

Deno.test("GET /api/v1/trades filters by status and symbol", async () => {
  await using t = await createTestDb("pglite");
  const { ann, get } = await setup(t);
  await seed(t.db, ann, "MNQ");
  const all = await get(ann, "/api/v1/trades");
  assert.deepEqual(all.body.data.map((tr: { status: string }) => tr.status), ["open", "closed"]);
  assert.equal(all.body.data[0].entry_price, "100.5");
  assert.equal(all.body.data[0].account, "paper");
  const open = await get(ann, "/api/v1/trades?status=open");
  assert.deepEqual(open.body.data.map((tr: { status: string }) => tr.status), ["open"]);
  const closed = await get(ann, "/api/v1/trades?status=closed&symbol=MNQ");
  assert.deepEqual(closed.body.data.map((tr: { quantity: string }) => tr.quantity), ["1"]);
  assert.deepEqual((await get(ann, "/api/v1/trades?symbol=ES")).body.data, []);
  assertError(await get(ann, "/api/v1/trades?status=pending"), 400, "VALIDATION_ERROR");
});

Deno.test("every read API route and the kill switch require a valid access token", async () => {
  await using t = await createTestDb("pglite");
  const { app } = await setup(t);
  const id = uuidv7();
  for (
    const [method, path] of [
      ["GET", "/api/v1/signals"],
      ["GET", `/api/v1/signals/${id}`],
      ["GET", "/api/v1/orders"],
      ["GET", `/api/v1/orders/${id}`],
      ["GET", "/api/v1/positions"],
      ["GET", "/api/v1/trades"],
      ["GET", "/api/v1/kill-switch"],
      ["POST", "/api/v1/kill-switch"],
    ]
  ) {
    for (const authorization of [undefined, "Bearer a.b.c"]) {
      const res = await app.request(path!, {
        method,
        headers: {
          "Content-Type": "application/json",
          ...(authorization ? { Authorization: authorization } : {}),
        },
        body: method === "POST" ? JSON.stringify({ enabled: true }) : undefined,
      });
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.equal((await res.json()).error.code, "AUTHENTICATION_REQUIRED");
    }
  }
});

Deno.test("a login token works on the read API end to end", async () => {
  await using t = await createTestDb("pglite");
  const { app } = await setup(t);
  const login = await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: "bob@example.com", password: "0123456789" }),
  });
  assert.equal(login.status, 200);
  const { access_token } = await login.json();
  const res = await app.request("/api/v1/kill-switch", {
    headers: { Authorization: `Bearer ${access_token}` },
  });
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).accounts, { "bob-alpaca": false, paper: false });
});

Deno.test("the OpenAPI document describes the auth and read API routes", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db });
  app.route("/", auth);
  app.route("/", api);
  const res = await app.request("/openapi.json");
  assert.equal(res.status, 200);
  const doc = await res.json();
  for (
    const path of [
      "/api/v1/auth/login",
      "/api/v1/signals",
      "/api/v1/signals/{id}",
      "/api/v1/orders",
      "/api/v1/orders/{id}",
      "/api/v1/positions",
      "/api/v1/trades",
      "/api/v1/kill-switch",
    ]
  ) {
    assert.ok(doc.paths[path], path);
  }
  assert.ok(doc.components.securitySchemes.Bearer);
  assert.deepEqual(doc.paths["/api/v1/signals"].get.security, [{ Bearer: [] }]);
});
