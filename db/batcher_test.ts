import assert from "node:assert/strict";
import { Batcher, type BatchOutcome } from "./batcher.ts";

/** A runner that records its batches and answers each when the test says so. */
function gatedRunner() {
  const batches: number[][] = [];
  const gates: Array<PromiseWithResolvers<void>> = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const run = async (items: readonly number[]): Promise<BatchOutcome<string>[]> => {
    batches.push([...items]);
    const gate = Promise.withResolvers<void>();
    gates.push(gate);
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    try {
      await gate.promise;
    } finally {
      inFlight--;
    }
    return items.map((i) => ({ ok: true, value: `v${i}` }));
  };
  return {
    run,
    batches,
    /** Lets the `n`th batch (0-based) answer, once it has started. */
    async release(n: number) {
      while (gates.length <= n) await new Promise((resolve) => setTimeout(resolve, 1));
      gates[n]!.resolve();
    },
    get mostInFlight() {
      return mostInFlight;
    },
  };
}

Deno.test("batcher runs items added together as one batch, and a lone item at once", async () => {
  const runner = gatedRunner();
  const batcher = new Batcher(runner.run);
  const lone = batcher.add(1);
  await runner.release(0);
  assert.equal(await lone, "v1");
  const together = [2, 3, 4].map((i) => batcher.add(i));
  await runner.release(1);
  assert.deepEqual(await Promise.all(together), ["v2", "v3", "v4"]);
  assert.deepEqual(runner.batches, [[1], [2, 3, 4]]);
});

Deno.test("batcher holds items that arrive during a flush for the next one, one flush at a time", async () => {
  const runner = gatedRunner();
  const batcher = new Batcher(runner.run, { maxBatch: 3 });
  const first = batcher.add(0);
  await new Promise((resolve) => setTimeout(resolve, 5)); // the first batch is in flight
  const later = [1, 2, 3, 4, 5, 6, 7].map((i) => batcher.add(i));
  assert.equal(batcher.waiting, 7);
  for (let n = 0; n < 4; n++) await runner.release(n);
  assert.equal(await first, "v0");
  assert.deepEqual(await Promise.all(later), ["v1", "v2", "v3", "v4", "v5", "v6", "v7"]);
  // In arrival order, at most maxBatch at a time, never two batches in flight.
  assert.deepEqual(runner.batches, [[0], [1, 2, 3], [4, 5, 6], [7]]);
  assert.equal(runner.mostInFlight, 1);
  assert.equal(batcher.waiting, 0);
});

Deno.test("batcher fails every item of a batch whose runner throws, and goes on with the next", async () => {
  let calls = 0;
  const batcher = new Batcher<number, number>((items) => {
    calls++;
    if (items.includes(13)) return Promise.reject(new Error("database down"));
    return Promise.resolve(items.map((i) => ({ ok: true, value: i * 2 })));
  });
  const doomed = [12, 13, 14].map((i) => batcher.add(i).then(() => "ok", (e) => e.message));
  assert.deepEqual(await Promise.all(doomed), ["database down", "database down", "database down"]);
  assert.equal(await batcher.add(21), 42);
  assert.equal(calls, 2);
});

Deno.test("batcher settles each item with its own outcome", async () => {
  const batcher = new Batcher<number, number>((items) =>
    Promise.resolve(
      items.map((i): BatchOutcome<number> =>
        i % 2 ? { ok: false, error: new RangeError(`odd ${i}`) } : { ok: true, value: i }
      ),
    )
  );
  const settled = await Promise.allSettled([1, 2, 3, 4].map((i) => batcher.add(i)));
  assert.deepEqual(
    settled.map((s) => s.status === "fulfilled" ? s.value : (s.reason as Error).message),
    ["odd 1", 2, "odd 3", 4],
  );
});

Deno.test("batcher fails the batch when the runner answers the wrong number of outcomes", async () => {
  const batcher = new Batcher<number, number>(() => Promise.resolve([{ ok: true, value: 1 }]));
  const results = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
  assert.ok(results.every((r) => r.status === "rejected"));
  assert.match(String((results[0] as PromiseRejectedResult).reason), /answered 1 outcomes for 2/);
});

Deno.test("batcher refuses a maxBatch that is not a positive integer", () => {
  assert.throws(() => new Batcher(() => Promise.resolve([]), { maxBatch: 0 }), RangeError);
  assert.throws(() => new Batcher(() => Promise.resolve([]), { maxBatch: 1.5 }), RangeError);
});
