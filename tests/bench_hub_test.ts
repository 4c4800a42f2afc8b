/**
 * The hub bench (bench/hub.ts) at a tiny scale, so that its pieces keep working: both servers
 * in child processes, 20 clients each (2 users × 10 on the hub, authenticated by token), 5
 * rounds after 1 discarded; every message arrives once, with a sane latency.
 */
import assert from "node:assert/strict";
import {
  type BroadcastRun,
  type ClientPool,
  connectFloor,
  connectHub,
  runBroadcast,
  spawnBroadcastServers,
} from "../bench/hub.ts";

function assertComplete(run: BroadcastRun, clients: number, rounds: number) {
  assert.equal(run.expected, clients * rounds);
  assert.equal(run.missing, 0, `${run.label}: messages missing`);
  assert.equal(run.duplicates, 0, `${run.label}: messages received twice`);
  assert.equal(run.received, clients * rounds);
  assert.equal(run.latencyMs.count, clients * rounds);
  assert.equal(run.closedEarly, 0);
  assert.ok(run.latencyMs.p50 >= 0, `${run.label}: p50 ${run.latencyMs.p50} below 0`);
  assert.ok(run.latencyMs.max < 5_000, `${run.label}: max ${run.latencyMs.max} ms`);
}

Deno.test("the hub bench delivers every round to every client of the hub and of the floor", async () => {
  const clients = 20;
  const options = { rounds: 5, warmup: 1, intervalMs: 50 };
  const { floor, hub } = await spawnBroadcastServers(2);
  let floorPool: ClientPool | undefined;
  let hubPool: ClientPool | undefined;
  try {
    floorPool = await connectFloor(floor, clients);
    hubPool = await connectHub(hub, clients);
    assertComplete(await runBroadcast(floor, floorPool, options), clients, options.rounds);
    assertComplete(await runBroadcast(hub, hubPool, options), clients, options.rounds);
  } finally {
    await floorPool?.close();
    await hubPool?.close();
    await floor.stop();
    await hub.stop();
  }
});
