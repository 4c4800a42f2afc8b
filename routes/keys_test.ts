import assert from "node:assert/strict";
import type { Queryable } from "../db/client.ts";
import { ALERT_PLACEHOLDERS } from "../lib/alert_message.ts";
import { hashWebhookKey } from "../lib/webhook_key.ts";
import { apiAs, createTestApp } from "../tests/_app.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import type { ErrorBody } from "./_errors.ts";

const DAY_MS = 86_400_000;
const KEY = /^whk_[A-Za-z0-9_-]{43}$/;

type TestApp = ReturnType<typeof createTestApp>;

interface KeyBody {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  replaced_by: string | null;
  status: string;
  webhook_url: string;
  alert_message: string;
  key?: string;
  replaced?: KeyBody;
}

/** A trader without keys (the fixture's key removed). */
async function trader(db: Queryable, email?: string) {
  const t = await insertTrader(db, { email });
  await db.query("DELETE FROM webhook_keys WHERE id = $1", [t.keyId]);
  const [user] = await db.query<{ email: string }>("SELECT email FROM users WHERE id = $1", [
    t.userId,
  ]);
  return { userId: t.userId, email: user!.email, db };
}

/** Sends API requests as `user` (see {@linkcode apiAs}). */
function caller(
  test: TestApp,
  user: { userId: string },
  headers: Record<string, string> = {},
) {
  return apiAs(test, user.userId, headers);
}

async function ok<T = KeyBody>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  return JSON.parse(text) as T;
}

async function error(res: Response, status: number, code: string): Promise<ErrorBody["error"]> {
  const body = await ok<ErrorBody>(res, status);
  assert.equal(body.error.code, code);
  return body.error;
}

async function list(call: ReturnType<typeof caller>, query = ""): Promise<KeyBody[]> {
  return (await ok<{ data: KeyBody[] }>(await call("GET", `/api/v1/webhook-keys${query}`), 200))
    .data;
}

/** The alert message with the key filled in and TradingView's placeholders as it fills them. */
function filled(message: string, key: string, values: { time: string; ticker?: string }) {
  const text = message
    .replace(/"<your key starting whk_[A-Za-z0-9_-]{8}…>"/, JSON.stringify(key))
    .replace(ALERT_PLACEHOLDERS.ticker, values.ticker ?? "NASDAQ:AAPL")
    .replace(ALERT_PLACEHOLDERS.action, "buy")
    .replace(ALERT_PLACEHOLDERS.quantity, "2")
    .replace(ALERT_PLACEHOLDERS.price, "190.12")
    .replace(ALERT_PLACEHOLDERS.time, values.time);
  assert.ok(!text.includes("{{"), text);
  return text;
}

/** Posts an alert as TradingView does (text/plain) and answers the status. */
async function alert(test: TestApp, body: string): Promise<number> {
  const res = await test.app.request("/api/v1/webhooks/tradingview", {
    method: "POST",
    headers: { "Content-Type": "text/plain; charset=utf-8" },
    body,
  });
  await res.body?.cancel();
  return res.status;
}

/** Alerts that differ (so none is a duplicate) and are valid at the test clock's time. */
function alertTime(test: TestApp, n: number): string {
  return new Date(test.clock.now() + n).toISOString();
}

for (const engine of ENGINES) {
  Deno.test(`webhook keys: create shows the key once and stores its hash, the key works until revoked (${engine})`, async () => {
    await using t = await createTestDb(engine);
    await using test = createTestApp({ db: t.db, env: { TRUST_PROXY: "true" } });
    const ann = await trader(t.db);
    const call = caller(test, ann, {
      "X-Forwarded-For": "203.0.113.7",
      "User-Agent": "keys-test/1.0",
    });
    const now = test.clock.now();

    const res = await call("POST", "/api/v1/webhook-keys", { name: "TradingView" });
    assert.equal(res.headers.get("cache-control"), "no-store");
    const requestId = res.headers.get("x-request-id");
    const created = await ok(res, 201);
    const key = created.key!;
    assert.match(key, KEY);
    assert.equal(created.prefix, key.slice(0, 12));
    assert.equal(created.name, "TradingView");
    assert.equal(created.status, "active");
    assert.equal(created.created_at, new Date(now).toISOString());
    assert.equal(created.expires_at, new Date(now + 180 * DAY_MS).toISOString(), "180 days");
    assert.equal(created.last_used_at, null);
    assert.equal(created.webhook_url, "http://localhost/api/v1/webhooks/tradingview");
    assert.equal(JSON.parse(created.alert_message).key, key, "the real key, this once");

    const rows = await t.db.query<{ key_hash: Uint8Array; dump: string }>(
      "SELECT key_hash, row_to_json(k)::text AS dump FROM webhook_keys k WHERE user_id = $1",
      [ann.userId],
    );
    assert.equal(rows.length, 1);
    assert.deepEqual(new Uint8Array(rows[0]!.key_hash), await hashWebhookKey(key), "SHA-256");
    assert.ok(!rows[0]!.dump.includes(key), "the key itself is not stored");

    const [listed, ...more] = await list(call);
    assert.deepEqual(more, []);
    assert.equal(listed!.id, created.id);
    assert.equal(listed!.status, "active");
    assert.equal(listed!.key, undefined, "the key is never shown again");
    assert.ok(!JSON.stringify(listed).includes(key));
    const message = JSON.parse(listed!.alert_message);
    assert.equal(message.key, `<your key starting ${created.prefix}…>`);
    assert.equal(message.account, "paper");

    const body = filled(listed!.alert_message, key, { time: alertTime(test, 0) });
    assert.equal(await alert(test, body), 202, "the filled-in alert message is accepted");
    if (engine === "pglite") {
      // Recording the use is not awaited by the webhook; PGlite runs queries in order.
      assert.equal((await list(call))[0]!.last_used_at, new Date(now).toISOString());
    }

    assert.equal((await call("DELETE", `/api/v1/webhook-keys/${created.id}`)).status, 204);
    const [revoked] = await list(call);
    assert.equal(revoked!.status, "revoked");
    assert.equal(revoked!.revoked_at, new Date(now).toISOString());
    assert.equal(
      await alert(test, filled(listed!.alert_message, key, { time: alertTime(test, 1) })),
      401,
      "a revoked key is refused",
    );
    assert.equal(
      (await call("DELETE", `/api/v1/webhook-keys/${created.id}`)).status,
      204,
      "revoking again is a no-op",
    );

    const audits = await t.db.query<Record<string, unknown>>(
      `SELECT actor_id, actor, action, target_type, target_id, ip, user_agent, request_id, data
       FROM audit_log WHERE action LIKE 'webhook_key.%' ORDER BY id`,
    );
    assert.deepEqual(audits.map((a) => a.action), ["webhook_key.created", "webhook_key.revoked"]);
    assert.deepEqual(audits[0], {
      actor_id: ann.userId,
      actor: ann.email,
      action: "webhook_key.created",
      target_type: "webhook_key",
      target_id: created.id,
      ip: "203.0.113.7",
      user_agent: "keys-test/1.0",
      request_id: requestId,
      data: { name: "TradingView", prefix: created.prefix, expires_at: created.expires_at },
    });
    assert.deepEqual(audits[1]!.data, {
      name: "TradingView",
      prefix: created.prefix,
    });
    const [leak] = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT row_to_json(a)::text AS t FROM audit_log a
         UNION ALL SELECT row_to_json(j)::text FROM journal j
         UNION ALL SELECT row_to_json(s)::text FROM signals s
       ) x WHERE position($1 IN t) > 0`,
      [key],
    );
    assert.equal(leak!.n, 0, "the key is in no audit row, journal entry or signal");
    assert.ok(!test.lines.some((l) => JSON.stringify(l).includes(key)), "nor in the log");
  });

  Deno.test(`webhook keys: rotation keeps the old key for the grace period, or stops it at once (${engine})`, async () => {
    await using t = await createTestDb(engine);
    await using test = createTestApp({ db: t.db });
    const ann = await trader(t.db);
    const call = caller(test, ann);
    const start = test.clock.now();
    let n = 0;
    const works = async (k: KeyBody, key: string) =>
      await alert(test, filled(k.alert_message, key, { time: alertTime(test, n++) })) === 202;

    const a = await ok(
      await call("POST", "/api/v1/webhook-keys", {
        name: "tv",
        expires_in_days: 30,
      }),
      201,
    );
    await test.clock.advance(DAY_MS);
    const res = await call("POST", `/api/v1/webhook-keys/${a.id}/rotate`, { grace_minutes: 60 });
    assert.equal(res.headers.get("cache-control"), "no-store");
    const b = await ok(res, 201);
    const rotatedAt = start + DAY_MS;
    assert.match(b.key!, KEY);
    assert.notEqual(b.key, a.key);
    assert.equal(b.name, "tv", "the same name");
    assert.equal(b.expires_at, new Date(rotatedAt + 30 * DAY_MS).toISOString(), "same lifetime");
    assert.equal(JSON.parse(b.alert_message).key, b.key);
    assert.equal(b.replaced?.id, a.id);
    assert.equal(b.replaced?.replaced_by, b.id);
    assert.equal(b.replaced?.revoked_at, null);
    assert.equal(b.replaced?.expires_at, new Date(rotatedAt + 3_600_000).toISOString());
    assert.equal(b.replaced?.status, "expiring");

    assert.ok(await works(a, a.key!), "the old key works during the grace period");
    assert.ok(await works(b, b.key!), "and so does the new one");
    await test.clock.advance(3_600_000);
    assert.ok(!await works(a, a.key!), "the old key stops when the grace period ends");
    assert.ok(await works(b, b.key!));
    await error(await call("POST", `/api/v1/webhook-keys/${a.id}/rotate`), 409, "CONFLICT");

    // No body: no grace period.
    const c = await ok(await call("POST", `/api/v1/webhook-keys/${b.id}/rotate`), 201);
    assert.ok(!await works(b, b.key!), "without a grace period the old key stops at once");
    assert.ok(await works(c, c.key!));
    assert.equal(c.replaced?.status, "revoked");
    assert.equal(c.replaced?.replaced_by, c.id);
    await error(await call("POST", `/api/v1/webhook-keys/${b.id}/rotate`), 409, "CONFLICT");

    // A key in its grace period was replaced already: rotate its successor instead.
    await test.clock.advance(1_000);
    const d = await ok(
      await call("POST", `/api/v1/webhook-keys/${c.id}/rotate`, { grace_minutes: 5 }),
      201,
    );
    const replaced = await error(
      await call("POST", `/api/v1/webhook-keys/${c.id}/rotate`, { grace_minutes: 5 }),
      409,
      "CONFLICT",
    );
    assert.match(replaced.message, new RegExp(`replaced by "${d.id}"`));

    const listed = await list(call);
    assert.deepEqual(listed.map((k) => [k.id, k.status, k.replaced_by]), [
      [d.id, "active", null],
      [c.id, "expiring", d.id],
      [b.id, "revoked", c.id],
      [a.id, "expired", b.id],
    ]);

    const never = await ok(
      await call("POST", "/api/v1/webhook-keys", {
        name: "forever",
        expires_in_days: null,
      }),
      201,
    );
    const renewed = await ok(await call("POST", `/api/v1/webhook-keys/${never.id}/rotate`), 201);
    assert.equal(renewed.expires_at, null, "a key that never expired is replaced by one alike");

    const audits = await t.db.query<{ target_id: string; data: Record<string, unknown> }>(
      "SELECT target_id, data FROM audit_log WHERE action = 'webhook_key.rotated' ORDER BY id",
    );
    assert.deepEqual(audits.map((r) => [r.target_id, r.data.replaced_by, r.data.grace_minutes]), [
      [a.id, b.id, 60],
      [b.id, c.id, 0],
      [c.id, d.id, 5],
      [never.id, renewed.id, 0],
    ]);
    assert.deepEqual(Object.keys(audits[0]!.data).sort(), [
      "expires_at",
      "grace_minutes",
      "name",
      "new_prefix",
      "old_expires_at",
      "prefix",
      "replaced_by",
    ]);
    const secrets = [a, b, c, d, never, renewed].map((k) => k.key!);
    const text = JSON.stringify(audits);
    assert.ok(secrets.every((s) => !text.includes(s)), "no key in the audit log");
  });

  Deno.test(`webhook keys: another user's keys and malformed ids are 404 (${engine})`, async () => {
    await using t = await createTestDb(engine);
    await using test = createTestApp({ db: t.db });
    const ann = await trader(t.db);
    const bob = await trader(t.db);
    const asAnn = caller(test, ann);
    const asBob = caller(test, bob);
    const key = await ok(await asAnn("POST", "/api/v1/webhook-keys", { name: "ann" }), 201);

    assert.deepEqual(await list(asBob), [], "Bob does not see Ann's key");
    await error(await asBob("POST", `/api/v1/webhook-keys/${key.id}/rotate`), 404, "NOT_FOUND");
    await error(await asBob("DELETE", `/api/v1/webhook-keys/${key.id}`), 404, "NOT_FOUND");
    const [still] = await list(asAnn);
    assert.deepEqual([still!.status, still!.replaced_by], ["active", null], "untouched");
    const [{ n }] = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_log WHERE actor_id = $1",
      [bob.userId],
    ) as [{ n: number }];
    assert.equal(n, 0, "nothing was done as Bob");

    for (
      const id of [
        "not-a-uuid",
        "123",
        "%20",
        "x".repeat(300),
        "00000000-0000-0000-0000-000000000000",
      ]
    ) {
      await error(await asAnn("POST", `/api/v1/webhook-keys/${id}/rotate`), 404, "NOT_FOUND");
      await error(await asAnn("DELETE", `/api/v1/webhook-keys/${id}`), 404, "NOT_FOUND");
    }
  });
}

Deno.test("webhook keys: every route needs an access token", async () => {
  await using t = await createTestDb("pglite");
  await using test = createTestApp({ db: t.db });
  const id = "01900000-0000-7000-8000-000000000000";
  for (
    const [method, path] of [
      ["GET", "/api/v1/webhook-keys"],
      ["POST", "/api/v1/webhook-keys"],
      ["POST", `/api/v1/webhook-keys/${id}/rotate`],
      ["DELETE", `/api/v1/webhook-keys/${id}`],
    ]
  ) {
    const res = await test.app.request(path!, {
      method,
      headers: { "Content-Type": "application/json" },
      body: method === "POST" ? JSON.stringify({ name: "x" }) : undefined,
    });
    await error(res, 401, "AUTHENTICATION_REQUIRED");
  }
});

Deno.test("webhook keys: expiry defaults to WEBHOOK_KEY_EXPIRES_DAYS, null never expires, and a key is expiring its last week", async () => {
  await using t = await createTestDb("pglite");
  await using test = createTestApp({ db: t.db, env: { WEBHOOK_KEY_EXPIRES_DAYS: "30" } });
  const ann = await trader(t.db);
  const call = caller(test, ann);
  const now = test.clock.now();

  const usual = await ok(await call("POST", "/api/v1/webhook-keys", { name: "usual" }), 201);
  assert.equal(usual.expires_at, new Date(now + 30 * DAY_MS).toISOString());
  const never = await ok(
    await call("POST", "/api/v1/webhook-keys", { name: "never", expires_in_days: null }),
    201,
  );
  assert.equal(never.expires_at, null);
  const short = await ok(
    await call("POST", "/api/v1/webhook-keys", { name: "short", expires_in_days: 10 }),
    201,
  );
  assert.equal(short.expires_at, new Date(now + 10 * DAY_MS).toISOString());
  const statuses = async () =>
    Object.fromEntries((await list(call)).map((k) => [k.name, k.status]));
  assert.deepEqual(await statuses(), { usual: "active", never: "active", short: "active" });

  await test.clock.advance(3 * DAY_MS - 1);
  assert.equal((await statuses()).short, "active", "more than 7 days left");
  await test.clock.advance(1);
  assert.equal((await statuses()).short, "expiring", "7 days left");
  assert.equal(
    await alert(test, filled(short.alert_message, short.key!, { time: alertTime(test, 0) })),
    202,
    "an expiring key still works",
  );
  await test.clock.advance(7 * DAY_MS);
  assert.deepEqual(await statuses(), { usual: "active", never: "active", short: "expired" });
  assert.equal(
    await alert(test, filled(short.alert_message, short.key!, { time: alertTime(test, 1) })),
    401,
    "an expired key is refused",
  );
  await test.clock.advance(10_000 * DAY_MS);
  assert.equal((await statuses()).never, "active");
  assert.equal(
    await alert(test, filled(never.alert_message, never.key!, { time: alertTime(test, 2) })),
    202,
  );
});

Deno.test("webhook keys: the alert message names ?account= and the webhook URL follows PUBLIC_URL", async () => {
  await using t = await createTestDb("pglite");
  await using test = createTestApp({
    db: t.db,
    env: { PUBLIC_URL: "https://signals.example.com/te/" },
  });
  const ann = await trader(t.db);
  const call = caller(test, ann);
  const created = await ok(
    await call("POST", "/api/v1/webhook-keys?account=alpaca-live", { name: "live" }),
    201,
  );
  assert.equal(created.webhook_url, "https://signals.example.com/te/api/v1/webhooks/tradingview");
  assert.equal(JSON.parse(created.alert_message).account, "alpaca-live");
  const [listed] = await list(call, "?account=margin_2");
  assert.deepEqual(JSON.parse(listed!.alert_message), {
    key: `<your key starting ${created.prefix}…>`,
    ticker: "{{ticker}}",
    action: "{{strategy.order.action}}",
    quantity: "{{strategy.order.contracts}}",
    price: "{{close}}",
    time: "{{timenow}}",
    account: "margin_2",
  });
  const bad = await error(
    await call("GET", "/api/v1/webhook-keys?account=Not%20An%20Alias"),
    400,
    "VALIDATION_ERROR",
  );
  assert.deepEqual(bad.details.map((d) => d.field), ["account"]);
});

Deno.test("webhook keys: bad bodies answer 400 naming the field", async () => {
  await using t = await createTestDb("pglite");
  await using test = createTestApp({ db: t.db });
  const ann = await trader(t.db);
  const call = caller(test, ann);
  const created = await ok(await call("POST", "/api/v1/webhook-keys", { name: "k" }), 201);

  for (
    const [body, field] of [
      [{}, "name"],
      [{ name: "" }, "name"],
      [{ name: "   " }, "name"],
      [{ name: "x".repeat(101) }, "name"],
      [{ name: 7 }, "name"],
      [{ name: "k", expires_in_days: 0 }, "expires_in_days"],
      [{ name: "k", expires_in_days: 3651 }, "expires_in_days"],
      [{ name: "k", expires_in_days: 1.5 }, "expires_in_days"],
      [{ name: "k", expires_in_days: "30" }, "expires_in_days"],
    ] as const
  ) {
    const e = await error(
      await call("POST", "/api/v1/webhook-keys", body),
      400,
      "VALIDATION_ERROR",
    );
    assert.deepEqual(e.details.map((d) => d.field), [field], JSON.stringify(body));
  }
  const unknown = await error(
    await call("POST", "/api/v1/webhook-keys", { name: "k", expires_days: 30 }),
    400,
    "VALIDATION_ERROR",
  );
  assert.match(unknown.details[0]!.message, /expires_days/, "a misspelt field is not ignored");
  await error(await call("POST", "/api/v1/webhook-keys", "{not json"), 400, "VALIDATION_ERROR");

  const rotate = `/api/v1/webhook-keys/${created.id}/rotate`;
  for (const grace of [-1, 10_081, 2.5, "60", null]) {
    const e = await error(
      await call("POST", rotate, { grace_minutes: grace }),
      400,
      "VALIDATION_ERROR",
    );
    assert.deepEqual(e.details.map((d) => d.field), ["grace_minutes"], String(grace));
  }
  const [{ n }] = await t.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM webhook_keys",
  ) as [{ n: number }];
  assert.equal(n, 1, "nothing was made or rotated");
});

Deno.test("webhook keys: a user may have 20 active keys; expired and revoked ones do not count", async () => {
  await using t = await createTestDb("pglite");
  await using test = createTestApp({ db: t.db });
  const ann = await trader(t.db);
  const call = caller(test, ann);
  const made: KeyBody[] = [];
  made.push(
    await ok(await call("POST", "/api/v1/webhook-keys", { name: "soon", expires_in_days: 1 }), 201),
  );
  for (let i = 1; i < 20; i++) {
    made.push(await ok(await call("POST", "/api/v1/webhook-keys", { name: `k${i}` }), 201));
  }
  const full = await error(
    await call("POST", "/api/v1/webhook-keys", { name: "21st" }),
    409,
    "CONFLICT",
  );
  assert.match(full.message, /20 keys are active/);
  const last = made[made.length - 1]!;
  await error(
    await call("POST", `/api/v1/webhook-keys/${last.id}/rotate`, { grace_minutes: 10 }),
    409,
    "CONFLICT",
  );
  const rotated = await ok(await call("POST", `/api/v1/webhook-keys/${last.id}/rotate`), 201);
  assert.equal(rotated.replaced?.status, "revoked", "rotating without grace keeps the count");

  await test.clock.advance(DAY_MS);
  await ok(await call("POST", "/api/v1/webhook-keys", { name: "after expiry" }), 201);
  await error(await call("POST", "/api/v1/webhook-keys", { name: "22nd" }), 409, "CONFLICT");
  assert.equal((await call("DELETE", `/api/v1/webhook-keys/${made[1]!.id}`)).status, 204);
  await ok(await call("POST", "/api/v1/webhook-keys", { name: "after revoke" }), 201);
  assert.equal((await list(call)).length, 23);
});

Deno.test("webhook keys: the OpenAPI document describes the routes as secured", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  await using test = createTestApp({ db: t.db });
  const doc = await (await test.app.request("/openapi.json")).json();
  assert.deepEqual(doc.paths["/api/v1/webhook-keys"].get.security, [{ Bearer: [] }]);
  assert.deepEqual(Object.keys(doc.paths["/api/v1/webhook-keys/{id}"]), ["delete"]);
  assert.ok(doc.paths["/api/v1/webhook-keys/{id}/rotate"].post.responses["409"]);
  assert.equal(
    doc.paths["/api/v1/webhook-keys"].post.responses["201"].content["application/json"].schema
      .$ref,
    "#/components/schemas/NewWebhookKey",
  );
});
