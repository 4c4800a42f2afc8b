/** The HTTP app with shared rate limits: through Upstash's REST protocol to a real Redis. */
import assert from "node:assert/strict";
import { createUser } from "../db/users.ts";
import { api } from "../routes/api.ts";
import { createTestApp } from "./_app.ts";
import { createTestDb } from "./_db.ts";
import { accessTokenFor } from "./_fixtures.ts";
import { startUpstashBridge, type UpstashBridge } from "./fakes/upstash_bridge.ts";

/** An app (one of several instances) whose limits are shared through `bridge`, and a trader. */
function instance(
  db: Parameters<typeof createTestApp>[0]["db"],
  bridge: UpstashBridge,
  prefix: string,
) {
  const test = createTestApp({
    db,
    env: {
      UPSTASH_REDIS_REST_URL: bridge.url,
      UPSTASH_REDIS_REST_TOKEN: bridge.token,
      RATE_LIMIT_PER_MINUTE: "50",
    },
    rateLimitPrefix: prefix,
  });
  test.app.route("/", api);
  return test;
}

/** Reads the rate-limit headers; `reset` in seconds since the epoch. */
function limits(res: Response) {
  return {
    limit: Number(res.headers.get("x-ratelimit-limit")),
    remaining: Number(res.headers.get("x-ratelimit-remaining")),
    reset: Number(res.headers.get("x-ratelimit-reset")),
  };
}

/** True when `reset` lies within the next minute of real time, as Redis's windows do. */
function fromRedis(reset: number): boolean {
  const now = Date.now() / 1000;
  return reset >= Math.floor(now) && reset <= Math.ceil(now) + 60;
}

async function setup() {
  const t = await createTestDb("pglite");
  const bridge = await startUpstashBridge();
  const prefix = `test:${crypto.randomUUID()}`;
  const a = instance(t.db, bridge, prefix);
  const user = await createUser(t.db, { email: "ann@example.com", password: "0123456789" }, {
    iterations: 1000,
  });
  const { token } = await accessTokenFor(t.db, user, {
    secret: a.config.jwtSecret,
    now: a.clock.now(),
  });
  return {
    db: t.db,
    bridge,
    prefix,
    a,
    get: (app: typeof a.app, auth = true) =>
      app.request("/api/v1/accounts", {
        headers: auth ? { Authorization: `Bearer ${token}` } : {},
      }),
    async [Symbol.asyncDispose]() {
      await a[Symbol.asyncDispose]();
      await bridge.deleteKeys(`${prefix}:*`);
      await bridge.close();
      await t[Symbol.asyncDispose]();
    },
  };
}

Deno.test("API requests are counted in Upstash Redis when UPSTASH_REDIS_REST_URL is set", async () => {
  await using t = await setup();
  await using b = instance(t.db, t.bridge, t.prefix);
  const first = await t.get(t.a.app);
  assert.equal(first.status, 200);
  await first.body?.cancel();
  const headers = limits(first);
  assert.equal(headers.limit, 50);
  assert.ok(headers.remaining <= 49, `remaining ${headers.remaining}`);
  assert.ok(fromRedis(headers.reset), `reset ${headers.reset} comes from Redis's clock`);

  const anonymous = await t.get(b.app, false);
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  assert.equal(limits(anonymous).limit, 50);
  assert.ok(fromRedis(limits(anonymous).reset));

  const keys = t.bridge.commands.filter((c) => c[0] === "EVAL" || c[0] === "EVALSHA")
    .map((c) => c[3]);
  assert.ok(keys.length >= 2, `commands: ${JSON.stringify(t.bridge.commands)}`);
  assert.ok(
    keys.every((k) => k?.startsWith(`${t.prefix}:api:ip:`)),
    `both instances count under one key: ${keys}`,
  );
  assert.equal(t.a.deps.rateLimiter.mode?.(), "shared");
  assert.equal(b.deps.rateLimiter.mode?.(), "shared");
});

Deno.test("API keeps answering from local limits while Upstash hangs, then shares again", async () => {
  await using t = await setup();
  t.bridge.outage("hang");
  const ok = await t.get(t.a.app);
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  const local = limits(ok);
  assert.equal(local.limit, 50);
  assert.equal(local.remaining, 49);
  assert.equal(fromRedis(local.reset), false, "the local window follows the app's clock");
  assert.equal(t.a.deps.rateLimiter.mode?.(), "local");

  const anonymous = await t.get(t.a.app, false);
  assert.equal(anonymous.status, 401, "not a 500");
  await anonymous.body?.cancel();
  assert.equal(limits(anonymous).remaining, 48);
  const warnings = t.a.lines.filter((l) =>
    l.message?.toString().startsWith("Rate limits fall back")
  );
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.level, "WARNING");

  t.bridge.restore();
  await t.a.clock.advance(5_000);
  const back = await t.get(t.a.app);
  assert.equal(back.status, 200);
  await back.body?.cancel();
  assert.ok(fromRedis(limits(back).reset), "counted in Redis again");
  assert.equal(t.a.deps.rateLimiter.mode?.(), "shared");
  assert.equal(
    t.a.lines.filter((l) => l.message === "Rate limits are shared again: Redis answers").length,
    1,
  );
});
