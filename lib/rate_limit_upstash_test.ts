import assert from "node:assert/strict";
import { startUpstashBridge } from "../tests/fakes/upstash_bridge.ts";
import { FakeClock } from "./clock.ts";
import { memoryLogger } from "./log.ts";
import { createAppLimiters, createMemoryRateLimiter, type RateLimiter } from "./rate_limit.ts";
import {
  createFailover,
  createFallbackRateLimiter,
  createUpstashRateLimiter,
  createUpstashRedis,
  toResult,
} from "./rate_limit_upstash.ts";

const LIMITS = { apiPerMinute: 100, authPerMinute: 10, webhookPerMinute: 30 };

/** A shared store that tests turn on and off; counts the calls that reached it. */
function scriptedShared() {
  let behaviour: "ok" | "fail" | "hang" = "ok";
  const state = {
    calls: 0,
    set(b: typeof behaviour) {
      behaviour = b;
    },
    limiter: {
      hit() {
        state.calls++;
        if (behaviour === "fail") return Promise.reject(new Error("connection refused"));
        if (behaviour === "hang") return new Promise<never>(() => {});
        return Promise.resolve({
          allowed: true,
          limit: 1000,
          remaining: 999,
          resetAt: 0,
          retryAfterS: 0,
        });
      },
    } satisfies RateLimiter,
  };
  return state;
}

/** A bridge, a key prefix of this test's own (deleted afterwards) and a captured log. */
async function setup() {
  const bridge = await startUpstashBridge();
  const prefix = `test:${crypto.randomUUID()}`;
  const { log, lines } = memoryLogger("debug");
  return {
    bridge,
    prefix,
    log,
    lines,
    clock: new FakeClock(),
    async [Symbol.asyncDispose]() {
      await bridge.deleteKeys(`${prefix}:*`);
      await bridge.close();
    },
  };
}

/** A port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("toResult maps Upstash's answer, with a retry time on refusals", () => {
  const now = 1_000_000;
  assert.deepEqual(toResult({ success: true, limit: 5, remaining: 4, reset: now + 30_000 }, now), {
    allowed: true,
    limit: 5,
    remaining: 4,
    resetAt: now + 30_000,
    retryAfterS: 0,
  });
  const refused = toResult({ success: false, limit: 5, remaining: 0, reset: now + 1_200 }, now);
  assert.equal(refused.allowed, false);
  assert.equal(refused.retryAfterS, 2, "rounded up to whole seconds");
  const late = toResult({ success: false, limit: 5, remaining: -1, reset: now - 10 }, now);
  assert.equal(late.retryAfterS, 1, "never less than one second");
  assert.equal(late.remaining, 0);
});

Deno.test("fallback limiter answers from the shared store while it works", async () => {
  const { log, lines } = memoryLogger();
  const shared = scriptedShared();
  const local = createMemoryRateLimiter({ limit: 2, windowMs: 60_000, clock: new FakeClock() });
  const limiter = createFallbackRateLimiter(
    shared.limiter,
    local,
    createFailover({ log, clock: new FakeClock() }),
  );
  for (let i = 0; i < 5; i++) assert.equal((await limiter.hit("k")).limit, 1000);
  assert.equal(limiter.mode(), "shared");
  assert.equal(shared.calls, 5);
  assert.deepEqual(lines, []);
});

Deno.test("fallback limiter answers locally during an outage, warns once, retries after retryMs", async () => {
  const { log, lines } = memoryLogger();
  const clock = new FakeClock();
  const shared = scriptedShared();
  const failover = createFailover({ log, clock, timeoutMs: 50, retryMs: 5_000 });
  const local = (limit: number) => createMemoryRateLimiter({ limit, windowMs: 60_000, clock });
  const api = createFallbackRateLimiter(shared.limiter, local(3), failover);
  const auth = createFallbackRateLimiter(shared.limiter, local(1), failover);

  assert.equal((await api.hit("ip:1")).limit, 1000);
  shared.set("fail");
  const results = [];
  for (let i = 0; i < 3; i++) results.push(await api.hit("ip:1"));
  assert.deepEqual(results.map((r) => [r.limit, r.allowed]), [[3, true], [3, true], [3, false]]);
  assert.equal(results[2]!.retryAfterS > 0, true);
  assert.equal((await auth.hit("auth:1")).limit, 1, "the other limiter is local too");
  assert.equal(api.mode(), "local");
  assert.equal(auth.mode(), "local");
  assert.equal(shared.calls, 2, "no Redis calls until a retry is due");
  const warnings = lines.filter((l) => l.level === "WARNING");
  assert.equal(warnings.length, 1, "one warning per outage, not per request or limiter");
  assert.match(String(warnings[0]!.message), /fall back/);
  assert.deepEqual(warnings[0]!.error, { name: "Error", message: "connection refused" });

  await clock.advance(5_000);
  assert.equal((await api.hit("ip:2")).limit, 3, "the retry failed: still local");
  assert.equal(shared.calls, 3);
  assert.equal(lines.filter((l) => l.level === "WARNING").length, 1, "no second warning");

  shared.set("ok");
  await clock.advance(4_999);
  assert.equal((await api.hit("ip:2")).limit, 3, "not due yet");
  assert.equal(shared.calls, 3);
  await clock.advance(1);
  assert.equal((await api.hit("ip:2")).limit, 1000, "Redis answers: shared again");
  assert.equal(api.mode(), "shared");
  assert.equal(auth.mode(), "shared");
  const recovered = lines.filter((l) => l.level === "INFO");
  assert.equal(recovered.length, 1);
  assert.match(String(recovered[0]!.message), /shared again/);
  assert.equal(recovered[0]!.outage_ms, 10_000);
});

Deno.test("fallback limiter does not wait for a shared store that never answers", async () => {
  const { log, lines } = memoryLogger();
  const clock = new FakeClock();
  const shared = scriptedShared();
  shared.set("hang");
  const limiter = createFallbackRateLimiter(
    shared.limiter,
    createMemoryRateLimiter({ limit: 7, windowMs: 60_000, clock }),
    createFailover({ log, clock, timeoutMs: 20 }),
  );
  const answers = await Promise.all([limiter.hit("a"), limiter.hit("b"), limiter.hit("c")]);
  assert.deepEqual(answers.map((a) => a.limit), [7, 7, 7]);
  assert.equal(limiter.mode(), "local");
  const warnings = lines.filter((l) => l.level === "WARNING");
  assert.equal(warnings.length, 1);
  assert.match(String((warnings[0]!.error as { message: string }).message), /within 20 ms/);
});

Deno.test("two instances over the same Redis share one budget", async () => {
  await using t = await setup();
  // Two clients, as two app instances would have; an hour-long window keeps the test away from
  // a window edge, where the sliding window would weigh in the previous window's hits.
  const options = { limit: 5, windowS: 3600, prefix: `${t.prefix}:api` };
  const a = createUpstashRateLimiter(createUpstashRedis(t.bridge), options);
  const b = createUpstashRateLimiter(createUpstashRedis(t.bridge), options);
  const results = [];
  for (let i = 0; i < 6; i++) results.push(await (i % 2 === 0 ? a : b).hit("ip:203.0.113.9"));
  assert.deepEqual(results.map((r) => r.allowed), [true, true, true, true, true, false]);
  assert.deepEqual(results.map((r) => r.remaining), [4, 3, 2, 1, 0, 0]);
  const refused = results[5]!;
  assert.equal(refused.limit, 5);
  assert.ok(refused.retryAfterS >= 1, `retryAfterS ${refused.retryAfterS}`);
  assert.ok(refused.resetAt > Date.now(), "the window resets in the future");
  assert.equal((await a.hit("ip:198.51.100.1")).remaining, 4, "other clients are unaffected");
  const names = t.bridge.commands.map((c) => c[0]);
  assert.ok(names.includes("EVALSHA"), `the limiter runs its Lua script: ${names}`);
});

Deno.test("shared limiters fall back when Redis errors, then share again with a recovery line", async () => {
  await using t = await setup();
  const limiters = createAppLimiters(LIMITS, t.clock, {
    shared: { upstash: t.bridge, log: t.log, prefix: t.prefix, timeoutMs: 2_000, retryMs: 5_000 },
  });
  const first = await limiters.rateLimiter.hit("ip:1");
  assert.equal(first.remaining, 99);
  assert.equal(limiters.rateLimiter.mode?.(), "shared");

  t.bridge.outage("error");
  const down = await limiters.rateLimiter.hit("ip:1");
  assert.equal(down.allowed, true);
  assert.equal(down.remaining, 98, "the local counts saw the first hit too");
  assert.equal(limiters.rateLimiter.mode?.(), "local");
  assert.equal((await limiters.webhookLimiter.hit("key:1")).limit, 30);
  assert.equal((await limiters.authLimiter.hit("auth:1")).limit, 10);
  assert.equal(t.lines.filter((l) => l.level === "WARNING").length, 1);

  t.bridge.restore();
  await t.clock.advance(5_000);
  await limiters.rateLimiter.hit("ip:1");
  assert.equal(limiters.rateLimiter.mode?.(), "shared");
  assert.equal(limiters.authLimiter.mode?.(), "shared");
  assert.equal(
    t.lines.filter((l) => l.message === "Rate limits are shared again: Redis answers").length,
    1,
  );
});

Deno.test("shared limiters answer locally within the timeout when Redis hangs", async () => {
  await using t = await setup();
  const limiters = createAppLimiters(LIMITS, t.clock, {
    shared: { upstash: t.bridge, log: t.log, prefix: t.prefix, timeoutMs: 200 },
  });
  t.bridge.outage("hang");
  const answers = await Promise.all([
    limiters.rateLimiter.hit("ip:1"),
    limiters.authLimiter.hit("auth:1"),
    limiters.webhookLimiter.hit("key:1"),
  ]);
  assert.deepEqual(answers.map((a) => a.allowed), [true, true, true]);
  assert.equal(limiters.rateLimiter.mode?.(), "local");
  assert.equal(t.lines.filter((l) => l.level === "WARNING").length, 1);
});

Deno.test("shared limiters answer locally when nothing listens at the Upstash URL", async () => {
  const { log, lines } = memoryLogger();
  const limiters = createAppLimiters(LIMITS, new FakeClock(), {
    shared: { upstash: { url: `http://127.0.0.1:${closedPort()}`, token: "t" }, log },
  });
  const result = await limiters.rateLimiter.hit("ip:1");
  assert.equal(result.allowed, true);
  assert.equal(result.limit, 100);
  assert.equal(limiters.rateLimiter.mode?.(), "local");
  const warnings = lines.filter((l) => l.level === "WARNING");
  assert.equal(warnings.length, 1);
  assert.equal(JSON.stringify(warnings[0]).includes('"t"'), false, "the token is not logged");
});
