import assert from "node:assert/strict";
import { FakeClock, systemClock } from "./clock.ts";

Deno.test("fake clock wakes sleepers in deadline order as time advances", async () => {
  const clock = new FakeClock(0);
  const woke: string[] = [];
  const a = clock.sleep(300).then(() => woke.push(`a@${clock.now()}`));
  const b = clock.sleep(100).then(() => woke.push(`b@${clock.now()}`));
  assert.equal(clock.pending, 2);
  await clock.advance(150);
  assert.deepEqual(woke, ["b@100"]);
  await clock.advance(500);
  await Promise.all([a, b]);
  assert.deepEqual(woke, ["b@100", "a@300"]);
  assert.equal(clock.now(), 650);
});

Deno.test("sleep rejects when its signal aborts, on both clocks", async () => {
  const fake = new FakeClock(0);
  const controller = new AbortController();
  const slept = fake.sleep(1000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(slept, /stop/);
  assert.equal(fake.pending, 0);

  const real = new AbortController();
  const sleeping = systemClock.sleep(60_000, real.signal);
  real.abort(new Error("cancelled"));
  await assert.rejects(sleeping, /cancelled/);
});
