import assert from "node:assert/strict";
import { FakeClock } from "../lib/clock.ts";
import { memoryLogger } from "../lib/log.ts";
import {
  ActorStoppedError,
  AskTimeoutError,
  type Behavior,
  createActor,
  type Reply,
} from "./actor.ts";
import { flush } from "./_testing.ts";

type Snapshot = { total: number; incarnation: number };

type Msg =
  | { type: "add"; by: number }
  | { type: "get"; reply: Reply<Snapshot> }
  | { type: "crash"; error: Error; reply?: Reply<Snapshot> }
  | { type: "step"; n: number }
  | { type: "slow"; gate: Promise<void>; reply?: Reply<Snapshot> }
  | { type: "ignore"; reply: Reply<Snapshot> };

/** A counter whose state records which incarnation built it; it records what it does. */
function counter() {
  const events: string[] = [];
  const stops: Snapshot[] = [];
  let incarnations = 0;
  const behavior: Behavior<Snapshot, Msg> = {
    init: () => ({ total: 0, incarnation: ++incarnations }),
    async receive(state, msg) {
      switch (msg.type) {
        case "add":
          events.push(`add:${msg.by}`);
          return { ...state, total: state.total + msg.by };
        case "get":
          msg.reply.ok(state);
          return state;
        case "crash":
          throw msg.error;
        case "step":
          events.push(`begin:${msg.n}`);
          await flush();
          events.push(`end:${msg.n}`);
          return state;
        case "slow":
          events.push("slow:begin");
          await msg.gate;
          events.push("slow:end");
          msg.reply?.ok(state);
          return { ...state, total: state.total + 100 };
        case "ignore":
          return state;
        default: {
          const unknown: never = msg;
          throw new Error(`Cannot handle message "${JSON.stringify(unknown)}"`);
        }
      }
    },
    stop(state) {
      stops.push(state);
    },
  };
  return { behavior, events, stops };
}

Deno.test("actor processes messages one at a time, in order", async () => {
  const { log } = memoryLogger();
  const { behavior, events } = counter();
  const actor = createActor("counter", behavior, { log, clock: new FakeClock() });
  const child = actor.run();
  await Promise.all([1, 2, 3].map((n) => actor.ref.tell({ type: "step", n })));
  await actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), { timeoutMs: 1000 });
  assert.deepEqual(events, ["begin:1", "end:1", "begin:2", "end:2", "begin:3", "end:3"]);
  await child.stop(1000);
});

Deno.test("actor ask resolves with the reply and leaves no timer behind", async () => {
  const { log } = memoryLogger();
  const clock = new FakeClock();
  const actor = createActor("counter", counter().behavior, { log, clock });
  const child = actor.run();
  await actor.ref.tell({ type: "add", by: 2 });
  await actor.ref.tell({ type: "add", by: 3 });
  const got = await actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), {
    timeoutMs: 500,
  });
  assert.deepEqual(got, { total: 5, incarnation: 1 });
  assert.equal(clock.pending, 0);
  await child.stop(1000);
});

Deno.test("actor ask rejects with AskTimeoutError when no reply comes in time", async () => {
  const { log } = memoryLogger();
  const clock = new FakeClock();
  const actor = createActor("executor:paper", counter().behavior, { log, clock });
  const child = actor.run();
  const asking = actor.ref.ask<Snapshot>((reply) => ({ type: "ignore", reply }), {
    timeoutMs: 500,
  });
  const rejected = assert.rejects(asking, (error) => {
    assert.ok(error instanceof AskTimeoutError);
    assert.equal(error.name, "AskTimeoutError");
    assert.equal(error.message, 'Cannot get a reply from "executor:paper": no reply within 500 ms');
    return true;
  });
  await clock.advance(499);
  let settled = false;
  asking.catch(() => settled = true);
  await flush();
  assert.equal(settled, false);
  await clock.advance(1);
  await rejected;
  await child.stop(1000);
});

Deno.test("actor ask requires a positive, finite timeout", async () => {
  const { log } = memoryLogger();
  const actor = createActor("counter", counter().behavior, { log, clock: new FakeClock() });
  for (const timeoutMs of [0, -1, Infinity, NaN]) {
    await assert.rejects(
      actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), { timeoutMs }),
      RangeError,
    );
  }
  assert.equal(actor.mailboxSize, 0);
});

Deno.test("actor ask rejects at once with the crash error when its message crashes the actor", async () => {
  const { log } = memoryLogger();
  // The clock never moves: a rejection can only come from the crash, not from the timeout.
  const clock = new FakeClock();
  const actor = createActor("counter", counter().behavior, { log, clock });
  const child = actor.run();
  const boom = new Error("Cannot reach broker: connection refused");
  const asking = actor.ref.ask<Snapshot>((reply) => ({ type: "crash", error: boom, reply }), {
    timeoutMs: 60_000,
  });
  await assert.rejects(asking, (error) => error === boom);
  await assert.rejects(child.done, (error) => error === boom);
  assert.equal(actor.status, "crashed");
  assert.equal(clock.pending, 0);
});

Deno.test("actor ref stays valid across a restart and the new incarnation gets the remaining mail with fresh state", async () => {
  const { log } = memoryLogger();
  const { behavior, events, stops } = counter();
  const actor = createActor("counter", behavior, { log, clock: new FakeClock() });
  const ref = actor.ref;
  // Queued before the first run: the crash leaves the messages after it in the mailbox.
  await ref.tell({ type: "add", by: 1 });
  await ref.tell({ type: "crash", error: new Error("boom") });
  await ref.tell({ type: "add", by: 10 });
  const asking = ref.ask<Snapshot>((reply) => ({ type: "get", reply }), { timeoutMs: 1000 });

  const first = actor.run();
  await assert.rejects(first.done, { message: "boom" });
  assert.equal(actor.mailboxSize, 2);
  assert.deepEqual(events, ["add:1"]);
  assert.deepEqual(stops, [{ total: 1, incarnation: 1 }]);

  const second = actor.run();
  assert.deepEqual(await asking, { total: 10, incarnation: 2 });
  assert.deepEqual(events, ["add:1", "add:10"]);
  await second.stop(1000);
});

Deno.test("actor init failure rejects done and keeps the mail", async () => {
  const { log } = memoryLogger();
  const actor = createActor<number, string>("broken", {
    init: () => {
      throw new Error("Cannot open database: refused");
    },
    receive: (n) => n,
  }, { log, clock: new FakeClock() });
  await actor.ref.tell("hello");
  await assert.rejects(actor.run().done, { message: "Cannot open database: refused" });
  assert.equal(actor.status, "crashed");
  assert.equal(actor.mailboxSize, 1);
});

Deno.test("actor run refuses to start a second incarnation while one runs", async () => {
  const { log } = memoryLogger();
  const actor = createActor("counter", counter().behavior, { log, clock: new FakeClock() });
  const child = actor.run();
  assert.throws(() => actor.run(), {
    message: 'Cannot run actor "counter": it is already running',
  });
  await child.stop(1000);
});

Deno.test("actor tell waits while the mailbox is full", async () => {
  const { log } = memoryLogger();
  const { behavior, events } = counter();
  const actor = createActor("counter", behavior, { log, clock: new FakeClock(), capacity: 1 });
  await actor.ref.tell({ type: "add", by: 1 });
  let admitted = false;
  const telling = actor.ref.tell({ type: "add", by: 2 }).then(() => admitted = true);
  await flush();
  assert.equal(admitted, false);
  assert.equal(actor.mailboxSize, 1);
  const child = actor.run();
  await telling;
  await child.stop(1000);
  assert.deepEqual(events, ["add:1", "add:2"]);
});

Deno.test("actor stop drains queued messages before it ends and refuses new ones", async () => {
  const { log, lines } = memoryLogger();
  const { behavior, events, stops } = counter();
  const clock = new FakeClock();
  const actor = createActor("counter", behavior, { log, clock });
  const child = actor.run();
  const gate = Promise.withResolvers<void>();
  await actor.ref.tell({ type: "slow", gate: gate.promise });
  await actor.ref.tell({ type: "add", by: 1 });
  await actor.ref.tell({ type: "add", by: 2 });

  const stopping = child.stop(1000);
  assert.equal(actor.status, "stopping");
  await assert.rejects(actor.ref.tell({ type: "add", by: 3 }), (error) => {
    assert.ok(error instanceof ActorStoppedError);
    assert.equal(error.message, 'Cannot deliver to "counter": the actor is stopping');
    return true;
  });
  gate.resolve();
  await stopping;
  await child.done;

  assert.deepEqual(events, ["slow:begin", "slow:end", "add:1", "add:2"]);
  assert.deepEqual(stops, [{ total: 103, incarnation: 1 }]);
  assert.equal(actor.status, "stopped");
  assert.equal(clock.pending, 0);
  assert.equal(lines.some((line) => line.message === "Actor stopped with messages dropped"), false);
  await assert.rejects(actor.ref.tell({ type: "add", by: 4 }), {
    name: "ActorStoppedError",
    message: 'Cannot deliver to "counter": the actor is stopped',
  });
  await assert.rejects(
    actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), { timeoutMs: 100 }),
    ActorStoppedError,
  );
});

Deno.test("actor stop drops messages left at the deadline and rejects their asks", async () => {
  const { log, lines } = memoryLogger();
  const { behavior, events, stops } = counter();
  const clock = new FakeClock();
  const actor = createActor("counter", behavior, { log, clock });
  const child = actor.run();
  await actor.ref.tell({ type: "add", by: 1 });
  const gate = Promise.withResolvers<void>();
  const inFlight = actor.ref.ask<Snapshot>(
    (reply) => ({ type: "slow", gate: gate.promise, reply }),
    { timeoutMs: 60_000 },
  );
  await actor.ref.tell({ type: "add", by: 2 });
  const queued = actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), {
    timeoutMs: 60_000,
  });

  const inFlightRejected = assert.rejects(inFlight, {
    name: "ActorStoppedError",
    message: 'Cannot deliver to "counter": the actor stopped before replying',
  });
  const queuedRejected = assert.rejects(queued, {
    name: "ActorStoppedError",
    message: 'Cannot deliver to "counter": the message was dropped at stop',
  });

  const stopping = child.stop(100);
  await clock.advance(99);
  await flush();
  assert.deepEqual(events, ["add:1", "slow:begin"]);
  assert.equal(actor.mailboxSize, 2);
  await clock.advance(1);
  await stopping;
  await inFlightRejected;
  await queuedRejected;
  assert.deepEqual(events, ["add:1", "slow:begin"]);
  assert.deepEqual(stops, [{ total: 1, incarnation: 1 }]);
  const dropped = lines.find((line) => line.message === "Actor stopped with messages dropped");
  assert.equal(dropped?.level, "WARNING");
  assert.equal(dropped?.dropped, 2);
  assert.equal(actor.mailboxSize, 0);
  assert.equal(clock.pending, 0);

  // The abandoned message may finish later; its result is ignored.
  gate.resolve();
  await flush();
  assert.deepEqual(stops, [{ total: 1, incarnation: 1 }]);
});

Deno.test("actor runs again after a stop and accepts messages again", async () => {
  const { log } = memoryLogger();
  const actor = createActor("counter", counter().behavior, { log, clock: new FakeClock() });
  await actor.run().stop(1000);
  const child = actor.run();
  await actor.ref.tell({ type: "add", by: 5 });
  const got = await actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), {
    timeoutMs: 1000,
  });
  assert.deepEqual(got, { total: 5, incarnation: 2 });
  await child.stop(1000);
});

Deno.test("actor stop on a crashed incarnation retires the actor and rejects the waiting asks", async () => {
  const { log } = memoryLogger();
  const actor = createActor("counter", counter().behavior, { log, clock: new FakeClock() });
  await actor.ref.tell({ type: "crash", error: new Error("boom") });
  const waiting = actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), {
    timeoutMs: 60_000,
  });
  const rejected = assert.rejects(waiting, ActorStoppedError);
  const child = actor.run();
  await assert.rejects(child.done, { message: "boom" });
  assert.equal(actor.mailboxSize, 1);
  await child.stop(1000);
  await rejected;
  assert.equal(actor.status, "stopped");
  await assert.rejects(actor.ref.tell({ type: "add", by: 1 }), ActorStoppedError);
});

Deno.test("actor ask on the system clock clears its timer, whether answered or timed out", async () => {
  const { log } = memoryLogger();
  const actor = createActor("counter", counter().behavior, { log });
  const child = actor.run();
  const got = await actor.ref.ask<Snapshot>((reply) => ({ type: "get", reply }), {
    timeoutMs: 5_000,
  });
  assert.deepEqual(got, { total: 0, incarnation: 1 });
  await assert.rejects(
    actor.ref.ask<Snapshot>((reply) => ({ type: "ignore", reply }), { timeoutMs: 20 }),
    AskTimeoutError,
  );
  await child.stop(1000);
});

Deno.test("actor stop gives up on an init that outlives the deadline", async () => {
  const { log } = memoryLogger();
  const clock = new FakeClock();
  const opened = Promise.withResolvers<number>();
  const stops: number[] = [];
  const actor = createActor<number, string>("slow-start", {
    init: () => opened.promise,
    receive: (n) => n,
    stop: (n) => void stops.push(n),
  }, { log, clock });
  await actor.ref.tell("hello");
  const child = actor.run();
  const stopping = child.stop(50);
  await clock.advance(50);
  await stopping;
  await child.done;
  assert.equal(actor.status, "stopped");
  assert.equal(actor.mailboxSize, 0);
  assert.deepEqual(stops, []);
  opened.resolve(1);
});
