import assert from "node:assert/strict";
import { createUser } from "../db/users.ts";
import { createTestApp } from "../tests/_app.ts";
import { createTestDb, ENGINES, type TestDb } from "../tests/_db.ts";
import type { ErrorBody } from "./_errors.ts";

const FAST = { iterations: 1000 };
const PASSWORD = "correct horse 1";
const JSON_HEADERS = { "Content-Type": "application/json" };

type App = ReturnType<typeof createTestApp>;

async function harness(t: TestDb, env: Record<string, string> = {}) {
  const test = createTestApp({
    db: t.db,
    env: { AUTH_RATE_LIMIT_PER_MINUTE: "1000", ...env },
  });
  const ann = await createUser(t.db, { email: "ann@example.com", password: PASSWORD }, FAST);
  const bob = await createUser(t.db, { email: "bob@example.com", password: PASSWORD }, FAST);
  return { ...test, ann, bob };
}

function post(app: App["app"], path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: "POST",
    headers: { ...JSON_HEADERS, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function login(app: App["app"], email: string, extra: Record<string, unknown> = {}) {
  const res = await post(app, "/api/v1/auth/login", { email, password: PASSWORD, ...extra });
  assert.equal(res.status, 200, await res.clone().text());
  return res;
}

async function tokens(app: App["app"], email: string) {
  const body = await (await login(app, email)).json();
  return { access: body.access_token as string, refresh: body.refresh_token as string };
}

function bearer(token: string) {
  return { Authorization: `Bearer ${token}` };
}

async function errorOf(res: Response, status: number, code: string) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}`);
  const body = await res.json() as ErrorBody;
  assert.equal(body.error.code, code);
  return body.error;
}

async function auditRows(t: TestDb, action: string) {
  return await t.db.query<
    {
      actor_id: string | null;
      actor: string;
      outcome: string;
      ip: string | null;
      request_id: string | null;
      data: Record<string, unknown>;
      target_id: string | null;
    }
  >(
    `SELECT actor_id, actor, outcome, ip, request_id, data, target_id FROM audit_log
     WHERE action = $1 ORDER BY id`,
    [action],
  );
}

/** Cookies from Set-Cookie headers, by name, with their attributes. */
function setCookies(res: Response): Map<string, { value: string; attributes: string }> {
  const out = new Map<string, { value: string; attributes: string }>();
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(";");
    const eq = pair!.indexOf("=");
    out.set(pair!.slice(0, eq).trim(), {
      value: pair!.slice(eq + 1),
      attributes: attributes.join(";"),
    });
  }
  return out;
}

for (const engine of ENGINES) {
  Deno.test(`refresh rotates the token, and a reused one ends the whole session (${engine})`, async () => {
    await using t = await createTestDb(engine);
    await using h = await harness(t);
    const first = await tokens(h.app, "ann@example.com");

    const renewed = await post(h.app, "/api/v1/auth/refresh", { refresh_token: first.refresh });
    assert.equal(renewed.status, 200);
    const second = await renewed.json();
    assert.notEqual(second.refresh_token, first.refresh);
    assert.equal(second.user.email, "ann@example.com");
    assert.equal(
      (await h.app.request("/api/v1/me", { headers: bearer(second.access_token) })).status,
      200,
    );

    // The first refresh token again: someone copied it. The family ends, for both holders.
    const reused = await errorOf(
      await post(h.app, "/api/v1/auth/refresh", { refresh_token: first.refresh }),
      401,
      "AUTHENTICATION_REQUIRED",
    );
    assert.match(reused.message, /used before/);
    await errorOf(
      await h.app.request("/api/v1/me", { headers: bearer(second.access_token) }),
      401,
      "AUTHENTICATION_REQUIRED",
    );
    await errorOf(
      await post(h.app, "/api/v1/auth/refresh", { refresh_token: second.refresh_token }),
      401,
      "AUTHENTICATION_REQUIRED",
    );
    const [entry] = await auditRows(t, "auth.refresh_reuse");
    assert.equal(entry?.actor_id, h.ann.id);
    assert.equal(entry?.outcome, "failure");
    assert.ok(h.lines.some((l) => l.message === "Refresh token reused; session revoked"));

    // Another login of Ann's is a separate family and is untouched.
    const other = await tokens(h.app, "ann@example.com");
    assert.equal(
      (await h.app.request("/api/v1/me", { headers: bearer(other.access) })).status,
      200,
    );
  });

  Deno.test(`two concurrent refreshes with one token: one wins, the family ends (${engine})`, async () => {
    await using t = await createTestDb(engine);
    await using h = await harness(t);
    const { refresh } = await tokens(h.app, "ann@example.com");
    const results = await Promise.all(
      [1, 2].map(() => post(h.app, "/api/v1/auth/refresh", { refresh_token: refresh })),
    );
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 401]);
    for (const r of results) await r.body?.cancel();
    const [row] = await t.db.query<{ revoked_reason: string | null }>(
      "SELECT revoked_reason FROM sessions WHERE user_id = $1",
      [h.ann.id],
    );
    assert.equal(row?.revoked_reason, "refresh_token_reuse");
  });
}

Deno.test("a refresh token expires after 7 days; unknown and malformed ones are refused", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const { refresh } = await tokens(h.app, "ann@example.com");
  await h.clock.advance(7 * 86_400_000 + 1000);
  await errorOf(
    await post(h.app, "/api/v1/auth/refresh", { refresh_token: refresh }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  await errorOf(
    await post(h.app, "/api/v1/auth/refresh", { refresh_token: "rt_" + "A".repeat(43) }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  await errorOf(
    await post(h.app, "/api/v1/auth/refresh", { refresh_token: 42 }),
    400,
    "VALIDATION_ERROR",
  );
  await errorOf(
    await h.app.request("/api/v1/auth/refresh", {
      method: "POST",
      headers: JSON_HEADERS,
      body: "{nope",
    }),
    400,
    "VALIDATION_ERROR",
  );
  // No body and no cookie.
  await errorOf(
    await h.app.request("/api/v1/auth/refresh", { method: "POST" }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
});

Deno.test("logout ends the session: its access and refresh tokens stop working at once", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const { access, refresh } = await tokens(h.app, "ann@example.com");
  const out = await post(h.app, "/api/v1/auth/logout", undefined, bearer(access));
  assert.equal(out.status, 204);
  await errorOf(
    await h.app.request("/api/v1/me", { headers: bearer(access) }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  await errorOf(
    await post(h.app, "/api/v1/auth/refresh", { refresh_token: refresh }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  const [entry] = await auditRows(t, "auth.logout");
  assert.equal(entry?.actor, "ann@example.com");
});

Deno.test("cookie sessions: httpOnly cookies, CSRF on changes, refresh through the cookie", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const res = await login(h.app, "ann@example.com", { mode: "cookie" });
  const body = await res.json();
  assert.equal(body.token_type, "cookie");
  assert.equal(body.access_token, undefined, "no token reaches a script in cookie mode");
  assert.equal(body.refresh_token, undefined);
  const cookies = setCookies(res);
  const access = cookies.get("te_access")!;
  const refresh = cookies.get("te_refresh")!;
  const csrf = cookies.get("te_csrf")!;
  assert.match(access.attributes, /HttpOnly/);
  assert.match(access.attributes, /SameSite=Lax/);
  assert.match(access.attributes, /Path=\//);
  assert.match(refresh.attributes, /HttpOnly/);
  assert.match(refresh.attributes, /SameSite=Strict/);
  assert.match(refresh.attributes, /Path=\/api\/v1\/auth/);
  assert.doesNotMatch(csrf.attributes, /HttpOnly/);
  assert.equal(csrf.value, body.csrf_token);

  const cookie = `te_access=${access.value}; te_csrf=${csrf.value}`;
  assert.equal((await h.app.request("/api/v1/me", { headers: { Cookie: cookie } })).status, 200);

  // A change authenticated by the cookie alone is refused: a cross-site form could send it.
  const change = { enabled: true, account: "paper" };
  const forgedMsg = await errorOf(
    await post(h.app, "/api/v1/kill-switch", change, { Cookie: cookie }),
    403,
    "FORBIDDEN",
  );
  assert.match(forgedMsg.message, /CSRF/);
  await errorOf(
    await post(h.app, "/api/v1/kill-switch", change, {
      Cookie: cookie,
      "X-CSRF-Token": "x".repeat(43),
    }),
    403,
    "FORBIDDEN",
  );
  await errorOf(
    await post(h.app, "/api/v1/kill-switch", change, {
      Cookie: cookie,
      "X-CSRF-Token": csrf.value,
      Origin: "https://evil.example",
    }),
    403,
    "FORBIDDEN",
  );
  const [switched] = await t.db.query<{ kill_switch: boolean }>(
    "SELECT kill_switch FROM broker_accounts WHERE user_id = $1",
    [h.ann.id],
  );
  assert.equal(switched?.kill_switch, false, "nothing changed");
  const ok = await post(h.app, "/api/v1/kill-switch", change, {
    Cookie: cookie,
    "X-CSRF-Token": csrf.value,
    Origin: "http://localhost",
    Host: "localhost",
  });
  assert.equal(ok.status, 200, await ok.clone().text());
  const [audited] = await auditRows(t, "kill_switch.changed");
  assert.equal(audited?.actor, "ann@example.com");
  assert.equal(audited?.data.enabled, true);

  // Refresh through the cookie takes the CSRF token too, and rotates the cookies.
  await errorOf(
    await h.app.request("/api/v1/auth/refresh", {
      method: "POST",
      headers: { Cookie: `te_refresh=${refresh.value}` },
    }),
    403,
    "FORBIDDEN",
  );
  const renewed = await h.app.request("/api/v1/auth/refresh", {
    method: "POST",
    headers: { Cookie: `te_refresh=${refresh.value}`, "X-CSRF-Token": csrf.value },
  });
  assert.equal(renewed.status, 200);
  const next = setCookies(renewed);
  assert.notEqual(next.get("te_refresh")?.value, refresh.value);
  assert.ok(next.get("te_access")?.value);

  // Logout clears the cookies.
  const out = await h.app.request("/api/v1/auth/logout", {
    method: "POST",
    headers: {
      Cookie: `te_access=${next.get("te_access")!.value}`,
      "X-CSRF-Token": csrf.value,
    },
  });
  assert.equal(out.status, 204);
  const cleared = setCookies(out);
  assert.match(cleared.get("te_access")?.attributes ?? "", /Max-Age=0/);
});

Deno.test("a bearer token needs no CSRF token, and a token is never read from the URL", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const { access } = await tokens(h.app, "ann@example.com");
  const ok = await post(h.app, "/api/v1/kill-switch", { enabled: true, account: "paper" }, {
    ...bearer(access),
  });
  assert.equal(ok.status, 200);
  await errorOf(
    await h.app.request(`/api/v1/me?access_token=${access}`),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  await errorOf(
    await h.app.request(`/api/v1/me?token=${access}`),
    401,
    "AUTHENTICATION_REQUIRED",
  );
});

Deno.test("cookies are Secure in production and over HTTPS", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const viaHttps = await h.app.request("https://trendedge.example/api/v1/auth/login", {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify({ email: "ann@example.com", password: PASSWORD, mode: "cookie" }),
  });
  assert.equal(viaHttps.status, 200);
  for (const [, cookie] of setCookies(viaHttps)) assert.match(cookie.attributes, /Secure/);
});

Deno.test("login is refused from a foreign origin (login CSRF)", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  await errorOf(
    await post(h.app, "/api/v1/auth/login", {
      email: "ann@example.com",
      password: PASSWORD,
      mode: "cookie",
    }, { Origin: "https://evil.example" }),
    403,
    "FORBIDDEN",
  );
  const allowed = await post(h.app, "/api/v1/auth/login", {
    email: "ann@example.com",
    password: PASSWORD,
  }, { Origin: "http://localhost:3000" });
  assert.equal(allowed.status, 200);
});

Deno.test("failed logins slow the next ones down, per email, and a success clears the count", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const attempt = (email: string, password: string) =>
    post(h.app, "/api/v1/auth/login", { email, password });

  // Three free failures; the third starts a 1 s delay, the fourth doubles it.
  for (let i = 0; i < 2; i++) {
    const res = await attempt("ann@example.com", "wrong password");
    await errorOf(res, 401, "AUTHENTICATION_REQUIRED");
    assert.equal(res.headers.get("retry-after"), null);
  }
  const third = await attempt("ann@example.com", "wrong password");
  assert.equal(third.headers.get("retry-after"), "1");
  await errorOf(third, 401, "AUTHENTICATION_REQUIRED");

  // While delayed, even the right password is not checked.
  const blocked = await attempt("ann@example.com", PASSWORD);
  assert.equal(blocked.headers.get("retry-after"), "1");
  await errorOf(blocked, 429, "RATE_LIMITED");

  await h.clock.advance(1000);
  const fourth = await attempt("ANN@example.com", "wrong password");
  assert.equal(fourth.headers.get("retry-after"), "2");
  await errorOf(fourth, 401, "AUTHENTICATION_REQUIRED");
  await h.clock.advance(2000);
  assert.equal((await attempt("ann@example.com", PASSWORD)).status, 200);
  // The success cleared the count: the next failure is free again.
  const after = await attempt("ann@example.com", "wrong password");
  assert.equal(after.headers.get("retry-after"), null);
  await after.body?.cancel();

  // Bob was never slowed down by Ann's failures; unknown emails are throttled the same way.
  assert.equal((await attempt("bob@example.com", PASSWORD)).status, 200);
  for (let i = 0; i < 3; i++) await (await attempt("nobody@example.com", "x")).body?.cancel();
  await errorOf(await attempt("nobody@example.com", "x"), 429, "RATE_LIMITED");

  const failures = await auditRows(t, "auth.login");
  const reasons = failures.filter((f) => f.outcome === "failure").map((f) => f.data.reason);
  assert.ok(reasons.includes("wrong_password"));
  assert.ok(reasons.includes("unknown_email"));
  assert.ok(reasons.includes("throttled"));
  const annFailure = failures.find((f) => f.data.reason === "wrong_password")!;
  assert.equal(annFailure.actor_id, h.ann.id);
  assert.ok(annFailure.request_id);
  assert.ok(annFailure.ip);
  assert.ok(failures.some((f) => f.outcome === "success" && f.actor_id === h.bob.id));
});

Deno.test("/api/v1/auth/* allows 10 requests a minute per address, then 429 with Retry-After", async () => {
  await using t = await createTestDb("pglite");
  const h = createTestApp({ db: t.db });
  await using _ = h;
  for (let i = 0; i < 10; i++) {
    const res = await h.app.request("/api/v1/auth/setup");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-ratelimit-limit"), "10");
  }
  const limited = await h.app.request("/api/v1/auth/setup");
  await errorOf(limited, 429, "RATE_LIMITED");
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  // The rest of the API has its own, larger budget.
  assert.equal((await h.app.request("/api/v1/me")).status, 401);
});

for (const engine of ENGINES) {
  Deno.test(`first-run setup creates the admin once, even when raced (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const h = createTestApp({ db: t.db, env: { AUTH_RATE_LIMIT_PER_MINUTE: "1000" } });
    await using _ = h;
    assert.deepEqual(await (await h.app.request("/api/v1/auth/setup")).json(), {
      setup_required: true,
    });
    const results = await Promise.all(
      ["a", "b", "c"].map((n) =>
        post(h.app, "/api/v1/auth/setup", { email: `${n}@example.com`, password: PASSWORD })
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, 409, 409]);
    const created = results.find((r) => r.status === 201)!;
    const body = await created.json();
    assert.equal(body.user.role, "admin");
    for (const r of results) if (r !== created) await errorOf(r, 409, "CONFLICT");
    assert.equal(
      (await h.app.request("/api/v1/me", { headers: bearer(body.access_token) })).status,
      200,
    );
    assert.deepEqual(await (await h.app.request("/api/v1/auth/setup")).json(), {
      setup_required: false,
    });
    assert.equal((await auditRows(t, "auth.setup")).length, 1);
    const [users] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM users");
    assert.equal(users?.n, 1);
  });
}

Deno.test("setup rejects a weak password and a bad email, and creates nothing", async () => {
  await using t = await createTestDb("pglite");
  const h = createTestApp({ db: t.db });
  await using _ = h;
  const weak = await errorOf(
    await post(h.app, "/api/v1/auth/setup", { email: "a@example.com", password: "short" }),
    400,
    "VALIDATION_ERROR",
  );
  assert.equal(weak.details[0]?.field, "password");
  const email = await errorOf(
    await post(h.app, "/api/v1/auth/setup", { email: "not an email", password: PASSWORD }),
    400,
    "VALIDATION_ERROR",
  );
  assert.equal(email.details[0]?.field, "email");
  const [users] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM users");
  assert.equal(users?.n, 0);
});

Deno.test("sessions: list them, end another device's, never someone else's", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const laptop = await tokens(h.app, "ann@example.com");
  const phone = await tokens(h.app, "ann@example.com");
  const bob = await tokens(h.app, "bob@example.com");

  const list = await (await h.app.request("/api/v1/sessions", { headers: bearer(laptop.access) }))
    .json();
  assert.equal(list.data.length, 2);
  assert.equal(list.data.filter((s: { current: boolean }) => s.current).length, 1);
  const phoneSession = list.data.find((s: { current: boolean }) => !s.current).id;

  // Bob cannot end Ann's session: it does not exist for him.
  await errorOf(
    await h.app.request(`/api/v1/sessions/${phoneSession}`, {
      method: "DELETE",
      headers: bearer(bob.access),
    }),
    404,
    "NOT_FOUND",
  );
  await errorOf(
    await h.app.request("/api/v1/sessions/not-a-uuid", {
      method: "DELETE",
      headers: bearer(bob.access),
    }),
    404,
    "NOT_FOUND",
  );
  assert.equal((await h.app.request("/api/v1/me", { headers: bearer(phone.access) })).status, 200);

  const ended = await h.app.request(`/api/v1/sessions/${phoneSession}`, {
    method: "DELETE",
    headers: bearer(laptop.access),
  });
  assert.equal(ended.status, 204);
  await errorOf(
    await h.app.request("/api/v1/me", { headers: bearer(phone.access) }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  assert.equal((await h.app.request("/api/v1/me", { headers: bearer(laptop.access) })).status, 200);
});

Deno.test("changing the password needs the current one and ends every other session", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const here = await tokens(h.app, "ann@example.com");
  const there = await tokens(h.app, "ann@example.com");
  await errorOf(
    await post(h.app, "/api/v1/me/password", {
      current_password: "wrong password",
      new_password: "a new password 2",
    }, bearer(here.access)),
    403,
    "FORBIDDEN",
  );
  await errorOf(
    await post(h.app, "/api/v1/me/password", {
      current_password: PASSWORD,
      new_password: "short",
    }, bearer(here.access)),
    400,
    "VALIDATION_ERROR",
  );
  const changed = await post(h.app, "/api/v1/me/password", {
    current_password: PASSWORD,
    new_password: "a new password 2",
  }, bearer(here.access));
  assert.equal(changed.status, 204);
  assert.equal((await h.app.request("/api/v1/me", { headers: bearer(here.access) })).status, 200);
  await errorOf(
    await h.app.request("/api/v1/me", { headers: bearer(there.access) }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  await errorOf(
    await post(h.app, "/api/v1/auth/login", { email: "ann@example.com", password: PASSWORD }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  const fresh = await post(h.app, "/api/v1/auth/login", {
    email: "ann@example.com",
    password: "a new password 2",
  });
  assert.equal(fresh.status, 200);
  const audited = await auditRows(t, "auth.password_changed");
  assert.deepEqual(audited.map((a) => a.outcome), ["failure", "success"]);
});

Deno.test("admins manage users and roles; a role change applies on the next request", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t); // Ann is the first user: admin. Bob is a trader.
  const ann = await tokens(h.app, "ann@example.com");
  const bob = await tokens(h.app, "bob@example.com");

  for (const path of ["/api/v1/admin/users", "/api/v1/admin/audit"]) {
    await errorOf(await h.app.request(path, { headers: bearer(bob.access) }), 403, "FORBIDDEN");
  }
  const users = await (await h.app.request("/api/v1/admin/users", { headers: bearer(ann.access) }))
    .json();
  assert.deepEqual(users.data.map((u: { email: string; role: string }) => [u.email, u.role]), [
    ["ann@example.com", "admin"],
    ["bob@example.com", "trader"],
  ]);
  assert.equal(users.data[1].active_sessions, 1);

  // The only admin cannot step down.
  await errorOf(
    await h.app.request(`/api/v1/admin/users/${h.ann.id}`, {
      method: "PATCH",
      headers: { ...JSON_HEADERS, ...bearer(ann.access) },
      body: JSON.stringify({ role: "trader" }),
    }),
    409,
    "CONFLICT",
  );
  const promoted = await h.app.request(`/api/v1/admin/users/${h.bob.id}`, {
    method: "PATCH",
    headers: { ...JSON_HEADERS, ...bearer(ann.access) },
    body: JSON.stringify({ role: "admin" }),
  });
  assert.equal(promoted.status, 200);
  // Bob's existing token now reaches admin routes: the role is read per request.
  assert.equal(
    (await h.app.request("/api/v1/admin/users", { headers: bearer(bob.access) })).status,
    200,
  );
  await errorOf(
    await h.app.request(`/api/v1/admin/users/00000000-0000-7000-8000-000000000000`, {
      method: "PATCH",
      headers: { ...JSON_HEADERS, ...bearer(ann.access) },
      body: JSON.stringify({ role: "admin" }),
    }),
    404,
    "NOT_FOUND",
  );
  await errorOf(
    await h.app.request(`/api/v1/admin/users/${h.bob.id}`, {
      method: "PATCH",
      headers: { ...JSON_HEADERS, ...bearer(ann.access) },
      body: JSON.stringify({ role: "owner" }),
    }),
    400,
    "VALIDATION_ERROR",
  );

  const created = await post(h.app, "/api/v1/admin/users", {
    email: "cy@example.com",
    password: null,
  }, bearer(ann.access));
  assert.equal(created.status, 201);
  assert.equal((await created.json()).role, "trader");
  await errorOf(
    await post(
      h.app,
      "/api/v1/admin/users",
      { email: "CY@example.com", password: null },
      bearer(ann.access),
    ),
    409,
    "CONFLICT",
  );
  // A user without a password cannot log in with one.
  await errorOf(
    await post(h.app, "/api/v1/auth/login", {
      email: "cy@example.com",
      password: "anything at all",
    }),
    401,
    "AUTHENTICATION_REQUIRED",
  );

  const audit = await (await h.app.request("/api/v1/admin/audit?action=user.role_changed", {
    headers: bearer(ann.access),
  })).json();
  assert.equal(audit.data.length, 1);
  assert.deepEqual(audit.data[0].data, { email: "bob@example.com", from: "trader", to: "admin" });
  assert.equal(audit.data[0].actor, "ann@example.com");
  assert.ok(audit.data[0].request_id);

  // Paging walks the whole log without repeats.
  const seen: number[] = [];
  let cursor: string | null = null;
  do {
    const page: { data: { id: number }[]; next_cursor: string | null } = await (await h.app.request(
      `/api/v1/admin/audit?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
      { headers: bearer(ann.access) },
    )).json();
    seen.push(...page.data.map((e) => e.id));
    cursor = page.next_cursor;
  } while (cursor);
  const [count] = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_log");
  assert.equal(seen.length, count?.n);
  assert.equal(new Set(seen).size, seen.length);
});

Deno.test("the audit log is append-only", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  await (await login(h.app, "ann@example.com")).body?.cancel();
  await assert.rejects(t.db.query("UPDATE audit_log SET actor = 'someone else'"), /append-only/);
  await assert.rejects(t.db.query("DELETE FROM audit_log"), /append-only/);
});

Deno.test("no token or password ever reaches a log line", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const res = await login(h.app, "ann@example.com");
  const { access_token: access, refresh_token: refresh } = await res.json();
  await post(h.app, "/api/v1/auth/refresh", { refresh_token: refresh });
  await post(h.app, "/api/v1/auth/refresh", { refresh_token: refresh }); // reuse: logged
  await post(h.app, "/api/v1/auth/login", { email: "ann@example.com", password: "wrong one!" });
  await h.app.request(`/api/v1/me?access_token=${access}`);
  const text = h.lines.map((l) => JSON.stringify(l)).join("\n");
  assert.ok(h.lines.length > 5);
  for (const secret of [access, refresh, PASSWORD, "wrong one!"]) {
    assert.ok(!text.includes(secret), `a log line holds ${secret.slice(0, 8)}…`);
  }
});

Deno.test("logout still works once the access token has expired, with the refresh token", async () => {
  await using t = await createTestDb("pglite");
  await using h = await harness(t);
  const { refresh } = await tokens(h.app, "ann@example.com");
  await h.clock.advance(2 * 3600_000);
  assert.equal(
    (await post(h.app, "/api/v1/auth/logout", { refresh_token: refresh })).status,
    204,
  );
  await errorOf(
    await post(h.app, "/api/v1/auth/refresh", { refresh_token: refresh }),
    401,
    "AUTHENTICATION_REQUIRED",
  );

  // The dashboard: expired access cookie, refresh cookie and the CSRF token.
  const res = await login(h.app, "ann@example.com", { mode: "cookie" });
  const cookies = setCookies(res);
  await res.body?.cancel();
  await h.clock.advance(2 * 3600_000);
  const cookie = `te_access=${cookies.get("te_access")!.value}; te_refresh=${
    cookies.get("te_refresh")!.value
  }`;
  await errorOf(
    await h.app.request("/api/v1/auth/logout", { method: "POST", headers: { Cookie: cookie } }),
    403,
    "FORBIDDEN",
  );
  const out = await h.app.request("/api/v1/auth/logout", {
    method: "POST",
    headers: { Cookie: cookie, "X-CSRF-Token": cookies.get("te_csrf")!.value },
  });
  assert.equal(out.status, 204);
  const live = await t.db.query("SELECT id FROM sessions WHERE revoked_at IS NULL");
  assert.equal(live.length, 0);
  // Nothing to prove a session: 401.
  await errorOf(
    await h.app.request("/api/v1/auth/logout", { method: "POST" }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
});
