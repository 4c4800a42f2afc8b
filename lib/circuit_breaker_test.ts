import assert from "node:assert/strict";
import { CircuitBreaker, type CircuitBreakerSnapshot } from "./circuit_breaker.ts";
import { FakeClock } from "./clock.ts";

const MINUTE = 60_000;
const START = Date.UTC(2026, 0, 5, 14, 30);

function setup() {
  const clock = new FakeClock(START);
  const breaker = new CircuitBreaker({ clock });
  return { clock, breaker };
}

/** Opens a fresh breaker with three failures. */
function open(breaker: CircuitBreaker): void {
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.recordFailure(), "opened");
}

Deno.test("circuit breaker opens on the third consecutive failure within 5 minutes", async () => {
  const { clock, breaker } = setup();
  assert.equal(breaker.state, "closed");
  assert.deepEqual(breaker.tryAcquire(), { allowed: true, probe: false });
  assert.equal(breaker.recordFailure(), undefined);
  await clock.advance(2 * MINUTE);
  assert.equal(breaker.recordFailure(), undefined);
  await clock.advance(2 * MINUTE);
  assert.equal(breaker.state, "closed");
  assert.equal(breaker.recordFailure(), "opened");
  assert.equal(breaker.state, "open");
});

Deno.test("circuit breaker does not count failures older than the 5-minute window", async () => {
  const { clock, breaker } = setup();
  breaker.recordFailure();
  breaker.recordFailure();
  await clock.advance(5 * MINUTE);
  assert.equal(breaker.recordFailure(), undefined, "the first two are exactly 5 minutes old");
  assert.equal(breaker.state, "closed");
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.recordFailure(), "opened", "three within the window open it");
});

Deno.test("circuit breaker success while closed resets the failure count", () => {
  const { breaker } = setup();
  breaker.recordFailure();
  breaker.recordFailure();
  assert.equal(breaker.recordSuccess(), undefined);
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.state, "closed");
  assert.equal(breaker.recordFailure(), "opened");
});

Deno.test("open circuit breaker refuses every request until the 10-minute cooldown ends", async () => {
  const { clock, breaker } = setup();
  open(breaker);
  const retryAt = START + 10 * MINUTE;
  assert.deepEqual(breaker.tryAcquire(), { allowed: false, retryAt });
  await clock.advance(10 * MINUTE - 1);
  assert.equal(breaker.state, "open");
  assert.deepEqual(breaker.tryAcquire(), { allowed: false, retryAt });
  await clock.advance(1);
  assert.equal(breaker.state, "half_open");
});

Deno.test("open circuit breaker ignores results of calls made before it opened", () => {
  const { breaker } = setup();
  open(breaker);
  assert.equal(breaker.recordSuccess(), undefined);
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.state, "open");
  assert.deepEqual(breaker.snapshot(), { failures: [], openUntil: START + 10 * MINUTE });
});

Deno.test("half-open circuit breaker lets one probe through and refuses a concurrent one", async () => {
  const { clock, breaker } = setup();
  open(breaker);
  await clock.advance(10 * MINUTE);
  assert.deepEqual(breaker.tryAcquire(), { allowed: true, probe: true });
  assert.deepEqual(breaker.tryAcquire(), {
    allowed: false,
    retryAt: START + 11 * MINUTE,
  });
  assert.equal(breaker.state, "half_open");
});

Deno.test("circuit breaker probe success closes it", async () => {
  const { clock, breaker } = setup();
  open(breaker);
  await clock.advance(10 * MINUTE);
  assert.equal(breaker.tryAcquire().allowed, true);
  assert.equal(breaker.recordSuccess(), "closed");
  assert.equal(breaker.state, "closed");
  assert.deepEqual(breaker.tryAcquire(), { allowed: true, probe: false });
  assert.equal(breaker.recordSuccess(), undefined, "only the transition is reported");
  // Closed again with a clean count: it takes three new failures to open.
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.recordFailure(), undefined);
  assert.equal(breaker.recordFailure(), "opened");
});

Deno.test("circuit breaker probe failure re-opens it for another cooldown", async () => {
  const { clock, breaker } = setup();
  open(breaker);
  await clock.advance(10 * MINUTE);
  assert.deepEqual(breaker.tryAcquire(), { allowed: true, probe: true });
  await clock.advance(5_000);
  assert.equal(breaker.recordFailure(), "opened");
  assert.equal(breaker.state, "open");
  const retryAt = START + 20 * MINUTE + 5_000;
  assert.deepEqual(breaker.tryAcquire(), { allowed: false, retryAt });
  await clock.advance(10 * MINUTE);
  assert.deepEqual(breaker.tryAcquire(), { allowed: true, probe: true }, "a new probe");
});

Deno.test("circuit breaker lets another probe through when one is never reported", async () => {
  const { clock, breaker } = setup();
  open(breaker);
  await clock.advance(10 * MINUTE);
  assert.equal(breaker.tryAcquire().allowed, true);
  await clock.advance(MINUTE - 1);
  assert.equal(breaker.tryAcquire().allowed, false);
  await clock.advance(1);
  assert.deepEqual(breaker.tryAcquire(), { allowed: true, probe: true });
});

Deno.test("circuit breaker snapshot round trip through JSON keeps it open", async () => {
  const { clock, breaker } = setup();
  open(breaker);
  await clock.advance(3 * MINUTE);
  const json = JSON.stringify(breaker.snapshot());
  const restored = CircuitBreaker.restore(JSON.parse(json), { clock });
  assert.equal(restored.state, "open");
  assert.deepEqual(restored.tryAcquire(), { allowed: false, retryAt: START + 10 * MINUTE });
  await clock.advance(7 * MINUTE);
  assert.deepEqual(restored.tryAcquire(), { allowed: true, probe: true });
  assert.equal(restored.recordSuccess(), "closed");
});

Deno.test("circuit breaker snapshot keeps counted failures and forgets an outstanding probe", async () => {
  const { clock, breaker } = setup();
  breaker.recordFailure();
  breaker.recordFailure();
  const closed = CircuitBreaker.restore(breaker.snapshot(), { clock });
  assert.equal(closed.recordFailure(), "opened", "the two failures survive the restart");

  await clock.advance(10 * MINUTE);
  assert.equal(closed.tryAcquire().allowed, true);
  const afterCrash = CircuitBreaker.restore(closed.snapshot(), { clock });
  assert.deepEqual(afterCrash.tryAcquire(), { allowed: true, probe: true });
});

Deno.test("circuit breaker honours custom options", async () => {
  const clock = new FakeClock(START);
  const breaker = new CircuitBreaker({ clock, failureThreshold: 1, cooldownMs: 1_000 });
  assert.equal(breaker.recordFailure(), "opened");
  await clock.advance(1_000);
  assert.equal(breaker.state, "half_open");
});

Deno.test("circuit breaker rejects bad options and malformed snapshots", () => {
  const clock = new FakeClock(START);
  assert.throws(() => new CircuitBreaker({ clock, failureThreshold: 0 }), {
    name: "RangeError",
    message: 'Cannot create circuit breaker: "failureThreshold" must be a positive integer',
  });
  assert.throws(() => new CircuitBreaker({ clock, cooldownMs: Number.NaN }), RangeError);
  const bad = { failures: "x", openUntil: null } as unknown as CircuitBreakerSnapshot;
  assert.throws(() => CircuitBreaker.restore(bad, { clock }), {
    name: "TypeError",
    message: /^Cannot restore circuit breaker: /,
  });
});
