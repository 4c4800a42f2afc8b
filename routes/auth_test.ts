import assert from "node:assert/strict";
import { OpenAPIHono } from "@hono/zod-openapi";
import { createUser, DuplicateEmailError, findUserByEmail, getUser } from "../db/users.ts";
import { signAccessToken, verifyAccessToken } from "../lib/jwt.ts";
import { PasswordPolicyError } from "../lib/password.ts";
import { createTestApp } from "../tests/_app.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { accessTokenFor } from "../tests/_fixtures.ts";
import { type AuthEnv, authUser, requireUser } from "./_auth.ts";
import type { ErrorBody } from "./_errors.ts";
import { auth } from "./auth.ts";

const FAST = { iterations: 1000 };

type Requester = { request(path: string, init?: RequestInit): Response | Promise<Response> };

async function login(app: Requester, body: unknown): Promise<Response> {
  return await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function error(res: Response, status: number, code: string): Promise<ErrorBody["error"]> {
  assert.equal(res.status, status);
  const body = await res.json() as ErrorBody;
  assert.equal(body.error.code, code);
  return body.error;
}

for (const engine of ENGINES) {
  Deno.test(`createUser makes the first user admin and gives everyone a paper account (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const first = await createUser(
      t.db,
      { email: "Ann@Example.com", password: "0123456789" },
      FAST,
    );
    const second = await createUser(
      t.db,
      { email: "bob@example.com", password: "0123456789" },
      FAST,
    );
    assert.equal(first.role, "admin");
    assert.equal(second.role, "trader");
    assert.equal(first.email, "Ann@Example.com");

    const accounts = await t.db.query<{ user_id: string; alias: string; broker: string }>(
      "SELECT user_id, alias, broker FROM broker_accounts ORDER BY created_at, alias",
    );
    assert.deepEqual(
      accounts.map((a) => [a.user_id, a.alias, a.broker]).sort(),
      [[first.id, "paper", "paper"], [second.id, "paper", "paper"]].sort(),
    );
    const journal = await t.db.query<{ user_id: string; event: string; data: { role: string } }>(
      "SELECT user_id, event, data FROM journal WHERE event = 'user.created' ORDER BY id",
    );
    assert.deepEqual(journal.map((j) => [j.user_id, j.data.role]), [
      [first.id, "admin"],
      [second.id, "trader"],
    ]);

    assert.equal((await findUserByEmail(t.db, "ann@EXAMPLE.com"))?.id, first.id);
    assert.match(
      (await findUserByEmail(t.db, "ann@example.com"))!.passwordHash!,
      /^pbkdf2_sha256\$/,
    );
    assert.equal(await findUserByEmail(t.db, "nobody@example.com"), null);
    assert.deepEqual(await getUser(t.db, second.id), {
      id: second.id,
      email: "bob@example.com",
      role: "trader",
      createdAt: second.createdAt,
    });
    assert.equal(await getUser(t.db, "not-a-uuid"), null);
  });

  Deno.test(`createUser refuses a duplicate email case-insensitively, leaving nothing behind (${engine})`, async () => {
    await using t = await createTestDb(engine);
    await createUser(t.db, { email: "ann@example.com", password: "0123456789" }, FAST);
    await assert.rejects(
      createUser(t.db, { email: "  ANN@example.COM ", password: "0123456789" }, FAST),
      (e) => e instanceof DuplicateEmailError && /already exists/.test(e.message),
    );
    const [count] = await t.db.query<{ users: number; accounts: number }>(
      `SELECT (SELECT count(*) FROM users)::int AS users,
              (SELECT count(*) FROM broker_accounts)::int AS accounts`,
    );
    assert.deepEqual({ ...count }, { users: 1, accounts: 1 });
    await assert.rejects(
      createUser(t.db, { email: "carl@example.com", password: "short" }, FAST),
      PasswordPolicyError,
    );
  });

  Deno.test(`concurrent first sign-ups make exactly one admin (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const users = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) => createUser(t.db, { email: `u${i}@example.com`, password: "0123456789" }, FAST),
      ),
    );
    assert.equal(users.filter((u) => u.role === "admin").length, 1);
    assert.equal(users.filter((u) => u.role === "trader").length, 5);
  });
}

Deno.test("POST /api/v1/auth/login returns a bearer token for the right password", async () => {
  await using t = await createTestDb("pglite");
  const { app, config, clock } = createTestApp({ db: t.db });
  app.route("/", auth);
  const user = await createUser(t.db, { email: "ann@example.com", password: "correct horse 1" });

  const res = await login(app, { email: "ANN@example.com", password: "correct horse 1" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("cache-control"), "no-store");
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), [
    "access_token",
    "expires_in",
    "refresh_expires_in",
    "refresh_token",
    "token_type",
    "user",
  ]);
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 3600);
  assert.equal(body.refresh_expires_in, 7 * 86400);
  assert.match(body.refresh_token, /^rt_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(body.user, { id: user.id, email: "ann@example.com", role: "admin" });
  const claims = await verifyAccessToken(body.access_token, {
    secret: config.jwtSecret,
    now: clock.now(),
  });
  assert.equal(claims.userId, user.id);
  assert.equal(claims.role, "admin");
  const [session] = await t.db.query<{ user_id: string }>(
    "SELECT user_id FROM sessions WHERE id = $1",
    [claims.sessionId],
  );
  assert.equal(session?.user_id, user.id);
});

Deno.test("login answers a wrong password and an unknown email alike, after the same work", async () => {
  await using t = await createTestDb("pglite");
  const { app } = createTestApp({ db: t.db });
  app.route("/", auth);
  await createUser(t.db, { email: "ann@example.com", password: "correct horse 1" });

  // Warm up (module compilation, first query) so the timings compare the hashing only.
  await login(app, { email: "ann@example.com", password: "warm up pass" });

  let started = performance.now();
  const wrong = await error(
    await login(app, { email: "ann@example.com", password: "wrong horse 1" }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  const wrongMs = performance.now() - started;
  started = performance.now();
  const unknown = await error(
    await login(app, { email: "nobody@example.com", password: "wrong horse 1" }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  const unknownMs = performance.now() - started;
  assert.equal(wrong.message, unknown.message);
  assert.deepEqual(wrong.details, unknown.details);
  // Both run PBKDF2 with 600,000 iterations; an early return would be ~100x faster.
  assert.ok(unknownMs > wrongMs * 0.25, `unknown ${unknownMs} ms vs wrong ${wrongMs} ms`);
});

Deno.test("login rejects a malformed body with VALIDATION_ERROR", async () => {
  await using t = await createTestDb("pglite");
  const { app } = createTestApp({ db: t.db });
  app.route("/", auth);
  const missing = await error(
    await login(app, { email: "ann@example.com" }),
    400,
    "VALIDATION_ERROR",
  );
  assert.ok(missing.details.some((d) => d.field === "password"));
  await error(await login(app, { email: 3, password: "x" }), 400, "VALIDATION_ERROR");
  await error(
    await app.request("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{not json",
    }),
    400,
    "VALIDATION_ERROR",
  );
  await error(
    await app.request("/api/v1/auth/login", { method: "POST", body: "email=a&password=b" }),
    415,
    "UNSUPPORTED_MEDIA_TYPE",
  );
});

Deno.test("requireUser accepts a valid bearer token and refuses missing, forged or expired ones", async () => {
  await using t = await createTestDb("pglite");
  const { app, config, clock } = createTestApp({ db: t.db });
  const sub = new OpenAPIHono<AuthEnv>();
  sub.get("/api/v1/whoami", requireUser, (c) => c.json(authUser(c)));
  app.route("/", sub);
  const user = await createUser(t.db, { email: "ann@example.com", password: null });
  const userId = user.id;
  const { token, sessionId } = await accessTokenFor(t.db, user, {
    secret: config.jwtSecret,
    now: clock.now(),
  });

  const ok = await app.request("/api/v1/whoami", { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), {
    userId,
    role: "admin",
    email: "ann@example.com",
    sessionId,
  });

  const forged = await signAccessToken({ userId, role: "admin", sessionId }, {
    secret: "someone-elses-secret-0123456789-0123456789",
    now: clock.now(),
  });
  for (
    const header of [
      undefined,
      "",
      token,
      `Basic ${btoa("a:b")}`,
      "Bearer not-a-jwt",
      `Bearer ${forged}`,
    ]
  ) {
    const res = await app.request("/api/v1/whoami", {
      headers: header === undefined ? {} : { Authorization: header },
    });
    await error(res, 401, "AUTHENTICATION_REQUIRED");
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
  }

  await clock.advance(3600_000 + 31_000);
  await error(
    await app.request("/api/v1/whoami", { headers: { Authorization: `Bearer ${token}` } }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
});
