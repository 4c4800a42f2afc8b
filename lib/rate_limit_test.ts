import assert from "node:assert/strict";
import { FakeClock } from "./clock.ts";
import { createMemoryRateLimiter } from "./rate_limit.ts";

Deno.test("rate limiter allows the limit per window and refuses the rest with a retry time", async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const limiter = createMemoryRateLimiter({ limit: 3, windowMs: 60_000, clock });
  const results = [];
  for (let i = 0; i < 4; i++) results.push(await limiter.hit("ip:1"));
  assert.deepEqual(results.map((r) => r.allowed), [true, true, true, false]);
  assert.deepEqual(results.map((r) => r.remaining), [2, 1, 0, 0]);
  assert.equal(results[3]!.retryAfterS, 60);
  assert.equal((await limiter.hit("ip:2")).allowed, true, "keys are independent");
});

Deno.test("rate limiter weighs the previous window so a burst at the edge cannot double the limit", async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const limiter = createMemoryRateLimiter({ limit: 10, windowMs: 60_000, clock });
  await clock.advance(59_000);
  for (let i = 0; i < 10; i++) assert.ok((await limiter.hit("k")).allowed);
  await clock.advance(2_000); // one second into the next window: ~97% of the last one still counts
  assert.equal((await limiter.hit("k")).allowed, false);
  await clock.advance(30_000); // half way: half the old hits count
  let allowed = 0;
  while ((await limiter.hit("k")).allowed) allowed++;
  assert.ok(allowed >= 4 && allowed <= 6, `allowed ${allowed} half way through`);
  await clock.advance(120_000);
  assert.equal((await limiter.hit("k")).remaining, 9, "a quiet period resets everything");
});

Deno.test("rate limiter keeps at most maxKeys keys", async () => {
  const clock = new FakeClock();
  const limiter = createMemoryRateLimiter({ limit: 1, windowMs: 60_000, clock, maxKeys: 100 });
  assert.equal((await limiter.hit("first")).allowed, true);
  for (let i = 0; i < 200; i++) await limiter.hit(`flood:${i}`);
  assert.equal((await limiter.hit("first")).allowed, true, "the oldest key was evicted");
});
