import assert from "node:assert/strict";
import { FakeClock } from "../lib/clock.ts";
import { memoryLogger } from "../lib/log.ts";
import { type Behavior, createActor, type Reply } from "./actor.ts";
import { type ChildSpec, Supervisor, SupervisorGaveUpError } from "./supervisor.ts";
import { FakeRun, flush, Probe, RecordingClock } from "./_testing.ts";

function setup(options: { intensity?: number; periodMs?: number; maxMs?: number } = {}) {
  const { log, lines } = memoryLogger();
  const clock = new RecordingClock(0);
  const probe = new Probe();
  const supervisor = new Supervisor({
    name: "root",
    intensity: options.intensity ?? 5,
    periodMs: options.periodMs ?? 30_000,
    backoff: { initialMs: 100, maxMs: options.maxMs ?? 5_000 },
    log,
    clock,
  });
  return { log, lines, clock, probe, supervisor };
}

Deno.test("supervisor starts children in order and stops them in reverse order", async () => {
  const { probe, supervisor, clock } = setup();
  await supervisor.start([
    probe.spec("db", "permanent", { shutdownMs: 100 }),
    probe.spec("executor", "permanent", { shutdownMs: 200 }),
    probe.spec("web", "transient", { shutdownMs: 300 }),
  ]);
  assert.equal(supervisor.running, true);
  assert.deepEqual(supervisor.status(), [
    { id: "db", state: "running", restarts: 0, startedAt: 0 },
    { id: "executor", state: "running", restarts: 0, startedAt: 0 },
    { id: "web", state: "running", restarts: 0, startedAt: 0 },
  ]);

  await supervisor.stop();
  await supervisor.done;
  assert.deepEqual(probe.events, [
    "start:db",
    "start:executor",
    "start:web",
    "stop:web:300",
    "stop:executor:200",
    "stop:db:100",
  ]);
  assert.equal(supervisor.running, false);
  assert.deepEqual(supervisor.status().map((child) => child.state), [
    "stopped",
    "stopped",
    "stopped",
  ]);
  assert.equal(clock.sleeps.length, 0);
});

Deno.test("supervisor restarts a permanent child after a crash and after a normal exit", async () => {
  const { lines, probe, supervisor, clock } = setup();
  await supervisor.start([probe.spec("scanner", "permanent")]);

  (await probe.started("scanner")).crash(new Error("Cannot fetch bars: timeout"));
  assert.equal(await clock.sleeps.next(), 100);
  assert.deepEqual(supervisor.status(), [
    { id: "scanner", state: "restarting", restarts: 1, lastError: "Cannot fetch bars: timeout" },
  ]);
  await clock.advance(100);

  (await probe.started("scanner")).exit();
  assert.equal(await clock.sleeps.next(), 200);
  await clock.advance(200);
  await probe.started("scanner");
  assert.deepEqual(supervisor.status(), [
    {
      id: "scanner",
      state: "running",
      restarts: 2,
      lastError: "Cannot fetch bars: timeout",
      startedAt: 300,
    },
  ]);

  const crashed = lines.filter((line) => line.message === "Child crashed");
  assert.equal(crashed.length, 1);
  assert.equal(crashed[0]?.level, "ERROR");
  assert.equal(crashed[0]?.child, "scanner");
  assert.deepEqual(
    (crashed[0]?.error as { message: string }).message,
    "Cannot fetch bars: timeout",
  );
  const restarts = lines.filter((line) => line.message === "Restarting child");
  assert.deepEqual(restarts.map((line) => [line.level, line.child, line.delayMs]), [
    ["WARNING", "scanner", 100],
    ["WARNING", "scanner", 200],
  ]);
  await supervisor.stop();
});

Deno.test("supervisor restarts a transient child only after a crash", async () => {
  const { probe, supervisor, clock } = setup();
  await supervisor.start([probe.spec("job", "transient"), probe.spec("sync", "transient")]);

  (await probe.started("job")).exit();
  await flush();
  assert.equal(clock.sleeps.length, 0);
  assert.equal(clock.pending, 0);
  assert.deepEqual(supervisor.status()[0], { id: "job", state: "stopped", restarts: 0 });

  (await probe.started("sync")).crash(new Error("boom"));
  assert.equal(await clock.sleeps.next(), 100);
  await clock.advance(100);
  await probe.started("sync");
  assert.deepEqual(probe.events, ["start:job", "start:sync", "start:sync"]);
  await supervisor.stop();
});

Deno.test("supervisor never restarts a temporary child and forgets it", async () => {
  const { probe, supervisor, clock } = setup();
  await supervisor.start([probe.spec("keep"), probe.spec("once", "temporary")]);
  (await probe.started("once")).crash(new Error("boom"));
  await flush();
  assert.equal(clock.sleeps.length, 0);
  assert.equal(clock.pending, 0);
  assert.deepEqual(supervisor.status().map((child) => child.id), ["keep"]);
  assert.deepEqual(probe.events, ["start:keep", "start:once"]);
  await supervisor.stop();
});

Deno.test("supervisor doubles the backoff per consecutive restart up to maxMs", async () => {
  const { probe, supervisor, clock } = setup({ intensity: 10, maxMs: 500 });
  await supervisor.start([probe.spec("flaky")]);
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    (await probe.started("flaky")).crash(new Error(`boom ${i}`));
    const ms = await clock.sleeps.next();
    delays.push(ms);
    // Nothing restarts a moment before the backoff ends.
    await clock.advance(ms - 1);
    assert.equal(supervisor.status()[0]?.state, "restarting");
    await clock.advance(1);
  }
  assert.deepEqual(delays, [100, 200, 400, 500, 500]);
  await probe.started("flaky");
  assert.equal(supervisor.status()[0]?.restarts, 5);
  await supervisor.stop();
});

Deno.test("supervisor resets a child's backoff after it ran longer than periodMs", async () => {
  const { probe, supervisor, clock } = setup({ periodMs: 1_000 });
  await supervisor.start([probe.spec("flaky")]);
  (await probe.started("flaky")).crash(new Error("boom"));
  await clock.advance(await clock.sleeps.next());
  (await probe.started("flaky")).crash(new Error("boom"));
  assert.equal(await clock.sleeps.next(), 200);
  await clock.advance(200);

  const run = await probe.started("flaky");
  await clock.advance(1_001);
  run.crash(new Error("boom"));
  assert.equal(await clock.sleeps.next(), 100);
  await supervisor.stop();
});

Deno.test("supervisor gives up when restarts exceed intensity within the period", async () => {
  const { lines, probe, supervisor, clock } = setup({ intensity: 2 });
  await supervisor.start([probe.spec("db"), probe.spec("scanner"), probe.spec("web")]);
  const gaveUp = assert.rejects(supervisor.done, (error) => {
    assert.ok(error instanceof SupervisorGaveUpError);
    assert.equal(error.name, "SupervisorGaveUpError");
    assert.equal(
      error.message,
      'Supervisor "root" gave up: 3 restarts within 30000 ms, last from "scanner": boom 3',
    );
    assert.equal(error.childId, "scanner");
    assert.equal((error.cause as Error).message, "boom 3");
    return true;
  });

  for (let i = 1; i <= 2; i++) {
    (await probe.started("scanner")).crash(new Error(`boom ${i}`));
    await clock.advance(await clock.sleeps.next());
  }
  (await probe.started("scanner")).crash(new Error("boom 3"));
  await gaveUp;

  assert.deepEqual(probe.events.slice(-2), ["stop:web:1000", "stop:db:1000"]);
  assert.equal(probe.events.filter((event) => event === "start:scanner").length, 3);
  const critical = lines.find((line) => line.level === "CRITICAL");
  assert.equal(critical?.message, "Supervisor gave up");
  assert.equal(critical?.child, "scanner");
  assert.equal((critical?.error as { message: string }).message, "boom 3");
  assert.equal(supervisor.running, false);
  assert.deepEqual(supervisor.status().map((child) => child.state), [
    "stopped",
    "stopped",
    "stopped",
  ]);
  assert.equal(clock.pending, 0);
  await supervisor.stop(); // harmless after giving up
});

Deno.test("supervisor restarts a nested supervisor that gave up", async () => {
  const { log, lines, probe, supervisor, clock } = setup();
  const inner: Supervisor[] = [];
  const scanners: ChildSpec = {
    id: "scanners",
    restart: "permanent",
    shutdownMs: 5_000,
    async start() {
      const sup = new Supervisor({ name: "scanners", intensity: 0, periodMs: 10_000, log, clock });
      inner.push(sup);
      await sup.start([probe.spec("scanner:a"), probe.spec("scanner:b")]);
      return sup;
    },
  };
  await supervisor.start([probe.spec("db"), scanners]);

  (await probe.started("scanner:a")).crash(new Error("boom"));
  assert.equal(await clock.sleeps.next(), 100);
  await assert.rejects(inner[0]!.done, SupervisorGaveUpError);
  const crashed = lines.find((line) =>
    line.message === "Child crashed" && line.child === "scanners"
  );
  assert.match((crashed?.error as { message: string }).message, /^Supervisor "scanners" gave up/);

  await clock.advance(100);
  await probe.started("scanner:b"); // the first run of scanner:b
  await probe.started("scanner:b"); // the run under the new inner supervisor
  assert.equal(inner.length, 2);
  assert.equal(inner[1]!.running, true);

  await supervisor.stop();
  assert.deepEqual(probe.events, [
    "start:db",
    "start:scanner:a",
    "start:scanner:b",
    "stop:scanner:b:1000",
    "start:scanner:a",
    "start:scanner:b",
    "stop:scanner:b:1000",
    "stop:scanner:a:1000",
    "stop:db:1000",
  ]);
  await inner[1]!.done;
});

Deno.test("supervisor startChild adds a child and refuses a taken id", async () => {
  const { probe, supervisor } = setup();
  await supervisor.start([probe.spec("a")]);
  await supervisor.startChild(probe.spec("b"));
  await assert.rejects(supervisor.startChild(probe.spec("b")), {
    message: 'Cannot start child "b": supervisor "root" already has a child with this id',
  });
  assert.deepEqual(supervisor.status().map((child) => child.id), ["a", "b"]);
  await supervisor.stop();
  assert.deepEqual(probe.events, ["start:a", "start:b", "stop:b:1000", "stop:a:1000"]);
});

Deno.test("supervisor stopChild stops one child and does not restart it", async () => {
  const { probe, supervisor, clock } = setup();
  await supervisor.start([probe.spec("a"), probe.spec("b", "permanent", { shutdownMs: 250 })]);
  await supervisor.stopChild("b");
  await flush();
  assert.deepEqual(probe.events, ["start:a", "start:b", "stop:b:250"]);
  assert.deepEqual(supervisor.status().map((child) => child.id), ["a"]);
  assert.equal(clock.sleeps.length, 0);
  await assert.rejects(supervisor.stopChild("b"), {
    message: 'Cannot stop child "b": supervisor "root" has no such child',
  });
  await supervisor.stop();
});

Deno.test("supervisor rolls back started children when a start fails", async () => {
  const { lines, probe, supervisor } = setup();
  const failure = assert.rejects(supervisor.done, { message: /child "web" failed to start/ });
  await assert.rejects(
    supervisor.start([
      probe.spec("db", "permanent", { shutdownMs: 100 }),
      probe.spec("executor", "permanent", { shutdownMs: 200 }),
      probe.spec("web", "permanent", { failStart: new Error("Cannot listen on port 8000") }),
      probe.spec("never"),
    ]),
    {
      message:
        'Cannot start supervisor "root": child "web" failed to start: Cannot listen on port 8000',
    },
  );
  await failure;
  assert.deepEqual(probe.events, [
    "start:db",
    "start:executor",
    "stop:executor:200",
    "stop:db:100",
  ]);
  assert.equal(supervisor.running, false);
  assert.ok(lines.some((line) => line.message === "Child failed to start" && line.child === "web"));
});

Deno.test("supervisor stop cancels a pending restart", async () => {
  const { probe, supervisor, clock } = setup();
  await supervisor.start([probe.spec("flaky")]);
  (await probe.started("flaky")).crash(new Error("boom"));
  assert.equal(await clock.sleeps.next(), 100);
  assert.equal(clock.pending, 1);
  await supervisor.stop();
  assert.equal(clock.pending, 0);
  await clock.advance(1_000);
  assert.deepEqual(probe.events, ["start:flaky"]);
  assert.deepEqual(supervisor.status(), [
    { id: "flaky", state: "stopped", restarts: 1, lastError: "boom" },
  ]);
});

Deno.test("supervisor retries a restart whose start throws, counting it as a restart", async () => {
  const { lines, supervisor, clock } = setup();
  const runs: FakeRun[] = [];
  let failing = false;
  const spec: ChildSpec = {
    id: "feed",
    restart: "permanent",
    shutdownMs: 1000,
    start() {
      if (failing) throw new Error("Cannot connect to feed: refused");
      const run = new FakeRun("feed", []);
      runs.push(run);
      return run;
    },
  };
  await supervisor.start([spec]);
  failing = true;
  runs[0]!.crash(new Error("boom"));
  await clock.advance(await clock.sleeps.next());
  assert.equal(await clock.sleeps.next(), 200);
  failing = false;
  await clock.advance(200);
  assert.equal(runs.length, 2);
  assert.equal(supervisor.status()[0]?.restarts, 2);
  assert.equal(supervisor.status()[0]?.state, "running");
  assert.ok(lines.some((line) => line.message === "Child failed to restart"));
  await supervisor.stop();
});

type CounterMsg =
  | { type: "add"; by: number }
  | { type: "crash" }
  | { type: "get"; reply: Reply<{ total: number; incarnation: number }> };

Deno.test("supervisor restarts a crashed actor whose ref and mailbox survive", async () => {
  const { log, supervisor, clock } = setup();
  let incarnations = 0;
  const behavior: Behavior<{ total: number; incarnation: number }, CounterMsg> = {
    init: () => ({ total: 0, incarnation: ++incarnations }),
    receive(state, msg) {
      switch (msg.type) {
        case "add":
          return { ...state, total: state.total + msg.by };
        case "crash":
          throw new Error("Cannot reach broker: refused");
        case "get":
          msg.reply.ok(state);
          return state;
        default: {
          const unknown: never = msg;
          throw new Error(`Cannot handle message "${JSON.stringify(unknown)}"`);
        }
      }
    },
  };
  // The actor's own clock stays still, so its ask timers never fire nor show up in `sleeps`.
  const actor = createActor("counter", behavior, { log, clock: new FakeClock(0) });
  await supervisor.start([
    { id: "counter", start: () => actor.run(), restart: "permanent", shutdownMs: 1000 },
  ]);
  const ref = actor.ref;
  await ref.tell({ type: "add", by: 1 });
  await ref.tell({ type: "crash" });
  await ref.tell({ type: "add", by: 10 });
  const asking = ref.ask<{ total: number; incarnation: number }>(
    (reply) => ({ type: "get", reply }),
    { timeoutMs: 1000 },
  );

  assert.equal(await clock.sleeps.next(), 100);
  assert.equal(actor.status, "crashed");
  await clock.advance(100);
  assert.deepEqual(await asking, { total: 10, incarnation: 2 });
  assert.deepEqual(supervisor.status(), [
    {
      id: "counter",
      state: "running",
      restarts: 1,
      lastError: "Cannot reach broker: refused",
      startedAt: 100,
    },
  ]);
  await supervisor.stop();
  assert.equal(actor.status, "stopped");
});
