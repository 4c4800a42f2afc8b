/**
 * Tenant isolation across the whole API. Two traders with real data (made through the API and
 * the pipeline); then every route the OpenAPI document lists is called by Bob with every one of
 * Ann's identifiers. Nothing of Ann's may come back, nothing of hers may change, and the answer
 * to her resources is the same 404 as for resources that do not exist (no enumeration).
 */
import assert from "node:assert/strict";
import { insertTrader } from "./_fixtures.ts";
import { alert, freshDatabase, postAlert, startInProcess, waitFilled } from "./_pipeline.ts";

type Json = Record<string, unknown>;

const PASSWORD = "correct horse 1";

/** Ann's rows that Bob's calls must leave exactly as they are. */
const SNAPSHOT = `
  SELECT json_build_object(
    'signals', (SELECT json_agg(s ORDER BY s.id) FROM signals s WHERE s.user_id = $1),
    'orders', (SELECT json_agg(o ORDER BY o.id) FROM orders o WHERE o.user_id = $1),
    'accounts', (SELECT json_agg(a ORDER BY a.id) FROM broker_accounts a WHERE a.user_id = $1),
    'keys', (SELECT json_agg(k ORDER BY k.id) FROM webhook_keys k WHERE k.user_id = $1),
    'sessions', (SELECT json_agg(x ORDER BY x.id) FROM sessions x WHERE x.user_id = $1),
    'positions', (SELECT json_agg(p ORDER BY p.symbol) FROM positions p WHERE p.user_id = $1),
    'user', (SELECT row_to_json(u) FROM users u WHERE u.id = $1)
  )::text AS snapshot`;

Deno.test("no route lets one trader read, change or probe another's data", async () => {
  await using database = await freshDatabase();
  await using server = await startInProcess({
    DATABASE_URL: database.url,
    AUTH_RATE_LIMIT_PER_MINUTE: "1000",
    RATE_LIMIT_PER_MINUTE: "100000",
  });
  const { db } = database;
  const base = server.url;
  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text };
  };

  // An admin first (the setup), so that Ann and Bob are plain traders.
  const setup = await call("POST", "/api/v1/auth/setup", undefined, {
    email: "admin@example.com",
    password: PASSWORD,
  });
  assert.equal(setup.status, 201);
  const adminToken = JSON.parse(setup.text).access_token;
  for (const email of ["ann@example.com", "bob@example.com"]) {
    const created = await call("POST", "/api/v1/admin/users", adminToken, {
      email,
      password: PASSWORD,
    });
    assert.equal(created.status, 201, created.text);
  }
  const login = async (email: string) => {
    const res = await call("POST", "/api/v1/auth/login", undefined, { email, password: PASSWORD });
    assert.equal(res.status, 200, res.text);
    return JSON.parse(res.text) as { access_token: string; user: { id: string } };
  };
  const ann = await login("ann@example.com");
  const bob = await login("bob@example.com");

  // Ann's data: a key made through the API, a filled signal, a rejected one, her sessions.
  const key = await call("POST", "/api/v1/webhook-keys", ann.access_token, { name: "ann's key" });
  assert.equal(key.status, 201, key.text);
  const annKey = JSON.parse(key.text) as { id: string; key: string; prefix: string };
  const filled = await postAlert(base, alert(annKey.key, { ticker: "NASDAQ:ANNX" }));
  assert.equal(filled.status, 202);
  await waitFilled(server.runtime, db, filled.body.signal_id);
  await postAlert(base, alert(annKey.key, { quantity: "lots" }));
  const alpaca = await call("POST", "/api/v1/accounts", ann.access_token, {
    alias: "ann-alpaca",
    broker: "alpaca",
    credentials: { key_id: "PKANNKEYID0001", secret_key: "ann-alpaca-secret-0123456789" },
    risk: { max_order_quantity: 5 },
  });
  assert.equal(alpaca.status, 201, alpaca.text);
  // Bob has data of his own too, so "empty" is never the reason nothing leaks.
  const bobFixture = await insertTrader(db, { email: "bob-extra@example.com" });
  const bobSignal = await postAlert(base, alert(bobFixture.key, { ticker: "NASDAQ:BOBX" }));
  assert.equal(bobSignal.status, 202);

  const [order] = await db.query<{ id: string }>("SELECT id FROM orders WHERE user_id = $1", [
    ann.user.id,
  ]);
  const [session] = await db.query<{ id: string }>(
    "SELECT id FROM sessions WHERE user_id = $1 LIMIT 1",
    [ann.user.id],
  );
  const [account] = await db.query<{ id: string; alias: string }>(
    "SELECT id, alias FROM broker_accounts WHERE user_id = $1",
    [ann.user.id],
  );
  const annIds = [
    filled.body.signal_id,
    order!.id,
    session!.id,
    annKey.id,
    account!.id,
    ann.user.id,
  ];
  // What must never appear in Bob's answers.
  const annSecrets = [
    ...annIds,
    "ann@example.com",
    "ANNX",
    annKey.prefix,
    annKey.key,
    "ann-alpaca",
    "PKANNKEYID0001",
    "ann-alpaca-secret-0123456789",
  ];
  const before = (await db.query<{ snapshot: string }>(SNAPSHOT, [ann.user.id]))[0]!.snapshot;

  const doc = JSON.parse((await call("GET", "/openapi.json")).text) as {
    paths: Record<string, Record<string, Json>>;
  };
  const checked: string[] = [];
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (!path.startsWith("/api/v1/") || path.startsWith("/api/v1/webhooks/")) continue;
    if (path.startsWith("/api/v1/auth/")) continue; // credentials, not resources
    for (const method of Object.keys(operations)) {
      const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      const targets = params.length === 0
        ? [path]
        : [...annIds, "ann-alpaca"].map((id) => path.replaceAll(/\{\w+\}/g, id));
      for (const target of targets) {
        // Bodies that would be valid for Bob's own resources, aimed at Ann's.
        const body = method === "get" || method === "delete" ? undefined : hijackBody(path);
        const res = await call(method.toUpperCase(), target, bob.access_token, body);
        checked.push(`${method.toUpperCase()} ${target} → ${res.status}`);
        assert.ok(res.status < 500, `${method} ${target} answered ${res.status}: ${res.text}`);
        for (const secret of annSecrets) {
          // An error may echo what Bob sent.
          if (target.includes(secret) || JSON.stringify(body ?? {}).includes(secret)) continue;
          assert.ok(
            !res.text.includes(secret),
            `${method.toUpperCase()} ${target} leaked "${secret}": ${res.text.slice(0, 300)}`,
          );
        }
        if (params.length > 0) {
          // Ann's resource answers exactly like one that does not exist (or is refused outright).
          assert.ok(
            [400, 403, 404].includes(res.status),
            `${method.toUpperCase()} ${target} answered ${res.status}: ${res.text}`,
          );
        }
        if (path.startsWith("/api/v1/admin/")) assert.equal(res.status, 403, target);
      }
    }
  }
  const after = (await db.query<{ snapshot: string }>(SNAPSHOT, [ann.user.id]))[0]!.snapshot;
  assert.equal(after, before, "Bob's calls changed nothing of Ann's");
  assert.ok(checked.length > 30, `only ${checked.length} calls were made`);
  // Ann still sees her own data through the same routes.
  const own = await call("GET", `/api/v1/signals/${filled.body.signal_id}`, ann.access_token);
  assert.equal(own.status, 200);
  const keys = await call("GET", "/api/v1/webhook-keys", ann.access_token);
  assert.ok(keys.text.includes(annKey.id));
});

/** A body that the route would accept for the caller's own resource. */
function hijackBody(path: string): Json {
  if (path.startsWith("/api/v1/accounts")) {
    return path.includes("{")
      ? { risk: { max_order_quantity: 1 }, micro_futures: true }
      : { alias: "paper", broker: "paper" };
  }
  if (path.startsWith("/api/v1/webhook-keys")) {
    return path.endsWith("/rotate") ? { grace_minutes: 0 } : { name: "hijack" };
  }
  if (path === "/api/v1/kill-switch") return { enabled: true, account: "ann-alpaca" };
  if (path.startsWith("/api/v1/admin/users")) {
    return path.includes("{") ? { role: "admin" } : { email: "x@example.com", password: null };
  }
  if (path === "/api/v1/me/password") {
    return { current_password: "wrong password!", new_password: "another password 3" };
  }
  return {};
}
