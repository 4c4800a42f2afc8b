/// <reference lib="dom" />
import assert from "node:assert/strict";
import { type PollAttempt, pollEvery } from "./refresh.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `attempt` aborts (for a call that never answers by itself). */
function aborted(attempt: PollAttempt): Promise<void> {
  return new Promise((resolve) => attempt.signal.addEventListener("abort", () => resolve()));
}

Deno.test("pollEvery never overlaps a slow call and counts the period from its end", async () => {
  const calls: Array<{ start: number; end: number }> = [];
  let running = 0;
  let most = 0;
  const stop = pollEvery(5, 1_000, async () => {
    running++;
    most = Math.max(most, running);
    const start = performance.now();
    await sleep(25); // five periods
    calls.push({ start, end: performance.now() });
    running--;
  });
  await sleep(300);
  stop();
  assert.equal(most, 1, "one call at a time");
  assert.ok(calls.length >= 2, `${calls.length} calls in 300 ms`);
  for (let i = 1; i < calls.length; i++) {
    assert.ok(calls[i]!.start >= calls[i - 1]!.end, "each call starts after the last ended");
  }
});

Deno.test("pollEvery gives a hung call up at its deadline and goes on polling", async () => {
  const seen: boolean[] = [];
  const stop = pollEvery(5, 30, async (attempt) => {
    await aborted(attempt);
    seen.push(attempt.timedOut());
  });
  await sleep(300);
  stop();
  assert.ok(seen.length >= 2, `${seen.length} calls given up`);
  assert.ok(seen.every((t) => t), "each ended by its deadline");
});

Deno.test("pollEvery: stopping aborts the running call (not a timeout) and ends the poll", async () => {
  let calls = 0;
  let endedBy: "stop" | "deadline" | undefined;
  const stop = pollEvery(5, 10_000, async (attempt) => {
    calls++;
    await aborted(attempt);
    endedBy = attempt.timedOut() ? "deadline" : "stop";
  });
  await sleep(100);
  stop();
  await sleep(50);
  assert.equal(calls, 1);
  assert.equal(endedBy, "stop");
});

Deno.test("pollEvery stops when a call answers false, and goes on after one that throws", async () => {
  let calls = 0;
  const stop = pollEvery(5, 1_000, () => {
    calls++;
    if (calls === 1) return Promise.reject(new Error("boom"));
    return Promise.resolve(calls < 3);
  });
  await sleep(300);
  stop();
  assert.equal(calls, 3, "a throw goes on, false ends it");
});
