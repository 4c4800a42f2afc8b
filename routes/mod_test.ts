import assert from "node:assert/strict";
import { Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { corsPolicy } from "./_middleware.ts";
import { createRoute, z } from "@hono/zod-openapi";
import { createTestApp } from "../tests/_app.ts";
import { createTestDb } from "../tests/_db.ts";
import type { ErrorBody } from "./_errors.ts";
import { DbUnavailableError } from "../db/client.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function errorBody(res: Response, status: number, code: string): Promise<ErrorBody> {
  assert.equal(res.status, status);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = await res.json() as ErrorBody;
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.deepEqual(Object.keys(body.error).sort(), [
    "code",
    "details",
    "message",
    "request_id",
    "timestamp",
  ]);
  assert.equal(body.error.code, code);
  assert.equal(body.error.request_id, res.headers.get("x-request-id"));
  assert.ok(!Number.isNaN(Date.parse(body.error.timestamp)));
  return body;
}

function assertSecurityHeaders(res: Response) {
  assert.match(res.headers.get("strict-transport-security") ?? "", /max-age=\d+/);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  assert.equal(res.headers.get("referrer-policy"), "strict-origin-when-cross-origin");
  assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  assert.match(res.headers.get("permissions-policy") ?? "", /camera=\(\)/);
}

Deno.test("GET /health answers liveness with request id, timing and security headers", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app, config } = createTestApp({ db: t.db });
  const res = await app.request("/health");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), ["status", "timestamp", "version"]);
  assert.equal(body.status, "ok");
  assert.equal(body.version, config.version);
  assert.match(res.headers.get("x-request-id") ?? "", UUID);
  assert.match(res.headers.get("x-response-time") ?? "", /^\d+\.\dms$/);
  assert.match(res.headers.get("server-timing") ?? "", /^app;dur=/);
  assertSecurityHeaders(res);
  assert.equal(res.headers.get("x-api-version"), null, "X-API-Version is for /api/ responses");
});

Deno.test("request id from the client is kept when well-formed and replaced when not", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db });
  const kept = await app.request("/health", { headers: { "X-Request-ID": "tv-alert-12345678" } });
  assert.equal(kept.headers.get("x-request-id"), "tv-alert-12345678");
  for (const bad of ["short", "has spaces in it", "x".repeat(129), "<script>alert(1)</script>"]) {
    const res = await app.request("/health", { headers: { "X-Request-ID": bad } });
    assert.match(res.headers.get("x-request-id") ?? "", UUID, `replaces ${bad}`);
  }
});

Deno.test("unknown paths answer 404 in the standard error body, with API and security headers", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db });
  const res = await app.request("/api/v1/nothing-here");
  const body = await errorBody(res, 404, "NOT_FOUND");
  assert.equal(body.error.message, "Cannot find /api/v1/nothing-here");
  assert.equal(res.headers.get("x-api-version"), "v1");
  assertSecurityHeaders(res);
});

Deno.test("a wrong method on a known path answers 405 with Allow", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db });
  const res = await app.request("/health/ready", { method: "DELETE" });
  await errorBody(res, 405, "METHOD_NOT_ALLOWED");
  assert.equal(res.headers.get("allow"), "GET, HEAD");
});

Deno.test("an unexpected error answers 500 without leaking its message, stack or SQL, and is logged", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app, lines } = createTestApp({ db: t.db });
  app.get("/api/v1/boom", async () => {
    await t.db.query("SELECT * FROM secret_internal_table");
    return new Response("unreachable");
  });
  const res = await app.request("/api/v1/boom");
  const text = await res.clone().text();
  const body = await errorBody(res, 500, "INTERNAL_ERROR");
  assert.equal(body.error.message, "Internal server error");
  assert.ok(!/secret_internal_table|at |\.ts|SELECT/.test(text), text);
  const logged = lines.find((l) => l.message === "Request failed");
  assert.ok(logged, "the failure is logged");
  assert.equal(logged.request_id, body.error.request_id);
  assert.match(JSON.stringify(logged.error), /secret_internal_table/);
  const access = lines.find((l) => l.message === "Request completed");
  assert.equal(access?.status_code, 500, "the access log sees the final status");
  assert.equal(access?.level, "ERROR");
});

Deno.test("a database outage inside a request answers 503 SERVICE_UNAVAILABLE with Retry-After", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db });
  app.get("/api/v1/needs-db", () => {
    throw new Error("query failed", {
      cause: Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:5432"), {
        code: "ECONNREFUSED",
      }),
    });
  });
  app.get("/api/v1/needs-db-2", () => {
    throw new DbUnavailableError("ping timed out");
  });
  for (const path of ["/api/v1/needs-db", "/api/v1/needs-db-2"]) {
    const res = await app.request(path);
    const text = await res.clone().text();
    await errorBody(res, 503, "SERVICE_UNAVAILABLE");
    assert.equal(res.headers.get("retry-after"), "5");
    assert.ok(!text.includes("10.0.0.5"), "no internal address in the body");
  }
});

Deno.test("validation failures name each bad field; malformed JSON is a 400, not a 500", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db });
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/echo",
      request: {
        body: {
          content: {
            "application/json": {
              schema: z.object({ symbol: z.string().min(1), quantity: z.number().positive() }),
            },
          },
        },
      },
      responses: { 200: { description: "ok" } },
    }),
    (c) => c.json(c.req.valid("json")),
  );
  const post = (body: string) =>
    app.request("/api/v1/echo", {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });

  const ok = await post(JSON.stringify({ symbol: "AAPL", quantity: 1 }));
  assert.equal(ok.status, 200);

  const invalid = await errorBody(
    await post(JSON.stringify({ symbol: "", quantity: -1 })),
    400,
    "VALIDATION_ERROR",
  );
  assert.deepEqual(invalid.error.details.map((d) => d.field).sort(), ["quantity", "symbol"]);

  const malformed = await errorBody(await post("{not json"), 400, "VALIDATION_ERROR");
  assert.match(malformed.error.message, /JSON|json/);
});

Deno.test("bodies over MAX_BODY_BYTES answer 413, declared or streamed", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db, env: { MAX_BODY_BYTES: "2048" } });
  let reached = 0;
  app.post("/api/v1/sink", async (c) => {
    reached++;
    return c.json({ bytes: (await c.req.text()).length });
  });
  const big = "x".repeat(4096);
  const declared = await app.request("/api/v1/sink", {
    method: "POST",
    body: big,
    headers: { "content-length": "4096" },
  });
  await errorBody(declared, 413, "PAYLOAD_TOO_LARGE");
  assert.equal(reached, 0, "the handler never runs for a declared oversize body");

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 8; i++) controller.enqueue(new TextEncoder().encode("y".repeat(512)));
      controller.close();
    },
  });
  const streamed = await app.request(
    "/api/v1/sink",
    { method: "POST", body: stream, duplex: "half" } as RequestInit,
  );
  await errorBody(streamed, 413, "PAYLOAD_TOO_LARGE");

  const small = await app.request("/api/v1/sink", { method: "POST", body: "hello" });
  assert.deepEqual(await small.json(), { bytes: 5 });

  const lying = await app.request("/api/v1/sink", {
    method: "POST",
    body: "x",
    headers: { "content-length": "abc" },
  });
  await errorBody(lying, 400, "VALIDATION_ERROR");
});

Deno.test("API requests over RATE_LIMIT_PER_MINUTE answer 429 with Retry-After; health and webhooks are not limited", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app, clock } = createTestApp({ db: t.db, env: { RATE_LIMIT_PER_MINUTE: "3" } });
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await app.request("/api/v1/x")).status);
  assert.deepEqual(statuses, [404, 404, 404, 429]);
  const limited = await app.request("/api/v1/x");
  const body = await errorBody(limited, 429, "RATE_LIMITED");
  assert.match(body.error.message, /3 per minute/);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  assert.equal(limited.headers.get("x-ratelimit-limit"), "3");
  assert.equal(limited.headers.get("x-ratelimit-remaining"), "0");
  assert.equal((await app.request("/health")).status, 200);
  assert.equal(
    (await app.request("/api/v1/webhooks/tradingview")).status,
    405,
    "webhooks are not limited per address (they have their own limit per key)",
  );
  await clock.advance(120_000);
  assert.equal((await app.request("/api/v1/x")).status, 404, "the window slides");
});

Deno.test("CORS allows configured origins only", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db, env: { CORS_ORIGINS: "https://app.example.com" } });
  const preflight = (origin: string) =>
    app.request("/api/v1/anything", {
      method: "OPTIONS",
      headers: { Origin: origin, "Access-Control-Request-Method": "POST" },
    });
  const ok = await preflight("https://app.example.com");
  assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example.com");
  assert.equal(ok.headers.get("access-control-allow-credentials"), "true");
  assert.match(ok.headers.get("access-control-allow-headers") ?? "", /X-CSRF-Token/i);
  const evil = await preflight("https://evil.example.net");
  assert.equal(evil.headers.get("access-control-allow-origin"), null);
});

Deno.test("readiness answers 200 when every probe passes and 503 degraded naming the failing part", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  let kvDown = false;
  const { app } = createTestApp({
    db: t.db,
    probes: {
      database: async () => ({ ping_ms: await t.db.ping(1000) }),
      kv: () => kvDown ? Promise.reject(new Error("database is locked")) : Promise.resolve({}),
    },
  });
  const up = await app.request("/health/ready");
  assert.equal(up.status, 200);
  const ready = await up.json();
  assert.equal(ready.status, "ok");
  assert.equal(ready.checks.database.status, "ok");
  assert.equal(typeof ready.checks.database.latency_ms, "number");

  kvDown = true;
  const down = await app.request("/health/ready");
  assert.equal(down.status, 503);
  const degraded = await down.json();
  assert.equal(degraded.status, "degraded");
  assert.equal(degraded.checks.database.status, "ok");
  assert.deepEqual({ status: degraded.checks.kv.status, message: degraded.checks.kv.message }, {
    status: "error",
    message: "database is locked",
  });
  assert.equal(down.headers.get("cache-control"), "no-store");
});

Deno.test("/health/detailed needs the operator key", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db, env: { OPERATOR_API_KEY: "operator-key-0123456789" } });
  await errorBody(await app.request("/health/detailed"), 401, "AUTHENTICATION_REQUIRED");
  await errorBody(
    await app.request("/health/detailed", { headers: { "X-API-Key": "operator-key-0123456788" } }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  const res = await app.request("/health/detailed", {
    headers: { "X-API-Key": "operator-key-0123456789" },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.status, "ok");
  assert.equal(body.environment, "test");
  assert.equal(body.database_engine, "pglite");
  assert.ok(body.memory.rss > 0);
});

Deno.test("OpenAPI document and Swagger UI are served outside production only", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app } = createTestApp({ db: t.db });
  const doc = await (await app.request("/openapi.json")).json();
  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(Object.keys(doc.paths).sort(), [
    "/api/v1/accounts",
    "/api/v1/accounts/{alias}",
    "/api/v1/admin/audit",
    "/api/v1/admin/users",
    "/api/v1/admin/users/{id}",
    "/api/v1/auth/login",
    "/api/v1/auth/logout",
    "/api/v1/auth/refresh",
    "/api/v1/auth/setup",
    "/api/v1/kill-switch",
    "/api/v1/me",
    "/api/v1/me/password",
    "/api/v1/notification-channels",
    "/api/v1/notification-channels/{id}",
    "/api/v1/notification-channels/{id}/test",
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/positions",
    "/api/v1/scan-settings",
    "/api/v1/sessions",
    "/api/v1/sessions/{id}",
    "/api/v1/signals",
    "/api/v1/signals/{id}",
    "/api/v1/trades",
    "/api/v1/trendlines",
    "/api/v1/watchlists",
    "/api/v1/webhook-keys",
    "/api/v1/webhook-keys/{id}",
    "/api/v1/webhook-keys/{id}/rotate",
    "/api/v1/webhooks/bars",
    "/api/v1/webhooks/tradingview",
    "/health",
    "/health/detailed",
    "/health/ready",
    "/metrics",
  ]);
  assert.ok(doc.components.schemas.Error, "the error body is documented");
  const docs = await app.request("/docs");
  assert.equal(docs.status, 200);
  assert.match(await docs.text(), /swagger/i);

  const prod = createTestApp({
    db: t.db,
    env: {
      APP_ENV: "production",
      JWT_SECRET: "p".repeat(40),
      ENCRYPTION_KEY: "ab".repeat(32),
      OPERATOR_API_KEY: "o".repeat(24),
    },
  });
  assert.equal((await prod.app.request("/openapi.json")).status, 404);
  assert.equal((await prod.app.request("/docs")).status, 404);
});

Deno.test("the access log writes one JSON line per request with the standard fields", async () => {
  await using t = await createTestDb("pglite", { migrate: false });
  const { app, lines } = createTestApp({ db: t.db });
  await app.request("/api/v1/missing?token=abc", {
    headers: { "User-Agent": "TradingView/1.0", "X-Request-ID": "req-abcdef-123" },
  });
  const line = lines.find((l) => l.message === "Request completed");
  assert.ok(line);
  for (
    const field of [
      "timestamp",
      "level",
      "logger",
      "request_id",
      "method",
      "path",
      "status_code",
      "duration_ms",
      "user_id",
      "ip",
      "user_agent",
    ]
  ) {
    assert.ok(field in line, `access log has ${field}`);
  }
  assert.equal(line.request_id, "req-abcdef-123");
  assert.equal(
    line.path,
    "/api/v1/missing",
    "the query string (which may hold a secret) is not logged",
  );
  assert.equal(line.status_code, 404);
  assert.equal(line.user_agent, "TradingView/1.0");
});

Deno.test("the CORS policy answers the headers hono/cors gives for the same options, without copying responses", async () => {
  const options = {
    origins: ["https://app.example.com", "http://localhost:5173"],
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: ["Authorization", "Content-Type"],
    exposeHeaders: ["X-Request-ID", "Retry-After"],
    maxAge: 600,
  };
  const build = (middleware: MiddlewareHandler) => {
    const app = new Hono();
    app.use("*", middleware);
    app.get("/ok", (c) => {
      c.header("X-Mine", "1");
      return c.json({ ok: true });
    });
    app.get("/fails", () => {
      throw new Error("boom");
    });
    app.onError((_e, c) => c.json({ error: true }, 500));
    return app;
  };
  const ours = build(corsPolicy(options) as unknown as MiddlewareHandler);
  const theirs = build(cors({ ...options, origin: options.origins, credentials: true }));
  const cases: Array<[string, string, string | undefined]> = [
    ["GET", "/ok", "https://app.example.com"],
    ["GET", "/ok", "https://evil.example.net"],
    ["GET", "/ok", undefined],
    ["GET", "/fails", "http://localhost:5173"],
    ["OPTIONS", "/ok", "https://app.example.com"],
    ["OPTIONS", "/ok", "https://evil.example.net"],
  ];
  for (const [method, path, origin] of cases) {
    const headers: Record<string, string> = origin
      ? { Origin: origin, "Access-Control-Request-Method": "POST" }
      : {};
    const init = { method, headers };
    const [a, b] = [await ours.request(path, init), await theirs.request(path, init)];
    assert.equal(a.status, b.status, `${method} ${path} ${origin}`);
    assert.deepEqual([...a.headers].sort(), [...b.headers].sort(), `${method} ${path} ${origin}`);
    assert.equal(await a.text(), await b.text());
  }
  // The handler's own Response goes out (its headers added to), not a copy of it.
  const app = new Hono();
  app.use("*", corsPolicy(options) as unknown as MiddlewareHandler);
  const own = new Response("mine", { headers: { "X-Mine": "1" } });
  app.get("/own", () => own);
  const res = await app.request("/own", { headers: { Origin: "https://app.example.com" } });
  assert.equal(res, own);
  assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example.com");
  assert.equal(res.headers.get("x-mine"), "1");
});
