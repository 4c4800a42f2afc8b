/**
 * The contract every durable queue adapter passes (`queue_kv_test.ts`, `queue_pg_test.ts`), and
 * the small helpers it awaits events with.
 */
import assert from "node:assert/strict";
import { createLogger, type LogFields, type Logger } from "../lib/log.ts";
import type { Delivery, Queue, QueueHandler } from "./queue.ts";

/** Storage for one test: every queue opened on it is closed when it is disposed. */
export interface QueueStorage extends AsyncDisposable {
  /** Opens a queue (not started) on the storage. */
  open(options: { log: Logger; backoffMs?: number[] }): Promise<Queue>;
  /** Like a process restart: closes every queue opened so far (and what they run on). */
  restart(): Promise<void>;
  /** Arguments of `tests/fixtures/queue_worker.ts` for this storage (a crashable target). */
  workerArgs?: string[];
}

/** One adapter on one engine. */
export interface QueueTarget {
  /** Starts every test name, e.g. "kv queue". */
  name: string;
  setup(): Promise<QueueStorage>;
  /** Several queue instances may share the storage (PostgreSQL). */
  shared?: boolean;
  /** Another process can open the storage, so a worker can be killed (not PGlite). */
  crashable?: boolean;
}

/** Things that happen over time (deliveries, log lines), to be awaited without sleeping. */
export class Events<T> {
  readonly items: T[] = [];
  #waiters = new Set<{ match: (item: T) => boolean; resolve: (item: T) => void }>();

  /** Records `item` and wakes the waiters it matches. */
  push(item: T): void {
    this.items.push(item);
    for (const waiter of [...this.#waiters]) {
      if (waiter.match(item)) {
        this.#waiters.delete(waiter);
        waiter.resolve(item);
      }
    }
  }

  /** Resolves with the first item (already seen or future) that matches; rejects after `timeoutMs`. */
  waitFor(match: (item: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
    const seen = this.items.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (item: T) => {
          clearTimeout(timer);
          resolve(item);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** Resolves with the matching items once there are `count` of them. */
  async waitForCount(
    match: (item: T) => boolean,
    count: number,
    what: string,
    timeoutMs = 10_000,
  ): Promise<T[]> {
    const enough = () => this.items.filter(match).length >= count;
    await this.waitFor(enough, what, timeoutMs).catch((error: Error) => {
      throw new Error(`${error.message} (saw ${this.items.filter(match).length} of ${count})`);
    });
    return this.items.filter(match);
  }
}

/** A handler that records each delivery (or what `map` makes of it) into `events`. */
export function recordInto<T = Delivery>(
  events: Events<T>,
  map: (delivery: Delivery) => T = (delivery) => delivery as T,
): QueueHandler {
  return (delivery) => {
    events.push(map(delivery));
    return Promise.resolve();
  };
}

/** A logger whose lines can be awaited. */
export function eventLogger(): { log: Logger; lines: Events<LogFields> } {
  const lines = new Events<LogFields>();
  const log = createLogger("test", {
    level: "debug",
    sink: (line) => lines.push(JSON.parse(line)),
  });
  return { log, lines };
}

/** A log line about one message id with this message text. */
export function logOf(message: string, id: string): (line: LogFields) => boolean {
  return (line) => line.message === message && line.id === id;
}

const DEAD = "Queue message moved to dead letters";
const FAST_BACKOFF = [20, 20];

/** Registers every contract test for `target`. */
export function queueContract(target: QueueTarget): void {
  const { name } = target;

  Deno.test(`${name} delivers a message once with its payload intact, attempt 1`, async () => {
    await using storage = await target.setup();
    const { log } = eventLogger();
    const queue = await storage.open({ log });
    const deliveries = new Events<Delivery>();
    queue.handle("order.placed", recordInto(deliveries));
    queue.start();
    const payload = {
      signalId: "sig_01",
      qty: 2.5,
      tags: ["NQ1!", "ünïcode ✓"],
      nested: { ok: true, none: null, list: [1, [2, { three: 3 }]] },
    };
    const id = await queue.enqueue({ type: "order.placed", payload });
    const delivery = await deliveries.waitFor((d) => d.id === id, "the delivery");
    assert.deepEqual(delivery, { id, type: "order.placed", payload, attempt: 1 });
    await queue.close();
    assert.equal(deliveries.items.length, 1);
    assert.deepEqual(await queue.depth(), { pending: 0, deadLetters: 0 });
  });

  Deno.test(`${name} routes messages to the handler of their type`, async () => {
    await using storage = await target.setup();
    const { log } = eventLogger();
    const queue = await storage.open({ log });
    const a = new Events<Delivery>();
    const b = new Events<Delivery>();
    queue.handle("type.a", recordInto(a));
    queue.start();
    queue.handle("type.b", recordInto(b)); // after start works too
    const idA = await queue.enqueue({ type: "type.a", payload: "for a" });
    const idB = await queue.enqueue({ type: "type.b", payload: "for b" });
    await a.waitFor((d) => d.id === idA, "type.a delivery");
    await b.waitFor((d) => d.id === idB, "type.b delivery");
    await queue.close();
    assert.deepEqual(a.items.map((d) => [d.id, d.payload]), [[idA, "for a"]]);
    assert.deepEqual(b.items.map((d) => [d.id, d.payload]), [[idB, "for b"]]);
  });

  Deno.test(`${name} holds a delayed message until its delay has passed`, async () => {
    await using storage = await target.setup();
    const { log } = eventLogger();
    const queue = await storage.open({ log });
    const deliveries = new Events<{ id: string; at: number }>();
    queue.handle("later", recordInto(deliveries, (d) => ({ id: d.id, at: performance.now() })));
    queue.start();
    const started = performance.now();
    const late = await queue.enqueue({ type: "later", payload: 1 }, { delayMs: 300 });
    const now = await queue.enqueue({ type: "later", payload: 2 });
    const first = await deliveries.waitFor((d) => d.id === now, "the undelayed message");
    const second = await deliveries.waitFor((d) => d.id === late, "the delayed message");
    assert.ok(second.at - started >= 300, `delivered after ${second.at - started} ms`);
    assert.ok(first.at <= second.at, "the undelayed message comes first");
  });

  Deno.test(`${name} retries a failing message with a higher attempt, then dead-letters it`, async () => {
    await using storage = await target.setup();
    const { log, lines } = eventLogger();
    const queue = await storage.open({ log });
    const attempts = new Events<Delivery>();
    queue.handle("flaky", (d) => {
      attempts.push(d);
      return Promise.reject(new Error(`Broker said no (attempt ${d.attempt})`));
    });
    queue.start();
    const payload = { order: "o-1" };
    const id = await queue.enqueue({ type: "flaky", payload }, { backoffMs: FAST_BACKOFF });
    const line = await lines.waitFor(logOf(DEAD, id), "the dead-letter log line");
    assert.equal(line.level, "ERROR");
    assert.deepEqual(attempts.items.map((d) => [d.id, d.attempt]), [[id, 1], [id, 2], [id, 3]]);
    assert.ok(attempts.items.every((d) => d.type === "flaky"));
    assert.ok(attempts.items.every((d) => JSON.stringify(d.payload) === JSON.stringify(payload)));
    assert.equal(
      lines.items.filter((l) => l.message === "Queue handler failed; will retry").length,
      2,
    );

    const dead = await queue.deadLetters();
    assert.equal(dead.length, 1);
    const [letter] = dead;
    assert.deepEqual({ ...letter, failedAt: undefined }, {
      id,
      type: "flaky",
      payload,
      attempts: 3,
      error: "Broker said no (attempt 3)",
      failedAt: undefined,
    });
    assert.ok(letter!.failedAt instanceof Date && !Number.isNaN(letter!.failedAt.getTime()));
    await queue.close();
    assert.deepEqual(await queue.depth(), { pending: 0, deadLetters: 1 });
  });

  Deno.test(`${name} with no retries dead-letters on the first failure`, async () => {
    await using storage = await target.setup();
    const { log, lines } = eventLogger();
    const queue = await storage.open({ log });
    queue.handle("once", () => Promise.reject("a bare string"));
    queue.start();
    const id = await queue.enqueue({ type: "once", payload: null }, { backoffMs: [] });
    await lines.waitFor(logOf(DEAD, id), "the dead-letter log line");
    const [letter] = await queue.deadLetters();
    assert.equal(letter?.attempts, 1);
    assert.equal(letter?.error, "a bare string");
    assert.equal(letter?.payload, null);
  });

  Deno.test(`${name} replays a dead letter with fresh attempts`, async () => {
    await using storage = await target.setup();
    const { log, lines } = eventLogger();
    const queue = await storage.open({ log, backoffMs: FAST_BACKOFF });
    let broken = true;
    const deliveries = new Events<Delivery>();
    queue.handle("fixable", (d) => {
      deliveries.push(d);
      return broken ? Promise.reject(new Error("Still broken")) : Promise.resolve();
    });
    queue.start();
    const id = await queue.enqueue({ type: "fixable", payload: { n: 7 } });
    await lines.waitFor(logOf(DEAD, id), "the dead letter");
    assert.equal(deliveries.items.length, 3);

    broken = false;
    assert.equal(await queue.replay(id), true);
    assert.equal(await queue.replay(id), false, "a replayed dead letter is gone");
    const again = await deliveries.waitForCount((d) => d.id === id, 4, "the replayed delivery");
    assert.deepEqual(again.at(-1), { id, type: "fixable", payload: { n: 7 }, attempt: 1 });
    await queue.close();
    assert.deepEqual(await queue.depth(), { pending: 0, deadLetters: 0 });
    assert.deepEqual(await queue.deadLetters(), []);
    assert.equal(await queue.replay(crypto.randomUUID()), false);
    assert.equal(await queue.replay("not-a-uuid"), false);
  });

  Deno.test(`${name} dead-letters a message whose type has no handler`, async () => {
    await using storage = await target.setup();
    const { log, lines } = eventLogger();
    const queue = await storage.open({ log });
    const handled = new Events<Delivery>();
    queue.handle("known", recordInto(handled));
    queue.start();
    const id = await queue.enqueue({ type: "nobody.listens", payload: { x: 1 } });
    await lines.waitFor(logOf(DEAD, id), "the dead letter");
    const [letter] = await queue.deadLetters();
    assert.equal(letter?.id, id);
    assert.equal(letter?.type, "nobody.listens");
    assert.equal(letter?.attempts, 1);
    assert.equal(letter?.error, 'No handler for queue message type "nobody.listens"');
    assert.deepEqual(letter?.payload, { x: 1 });
    assert.equal(handled.items.length, 0);
  });

  Deno.test(`${name} counts pending messages and dead letters`, async () => {
    await using storage = await target.setup();
    const { log, lines } = eventLogger();
    const queue = await storage.open({ log });
    assert.deepEqual(await queue.depth(), { pending: 0, deadLetters: 0 });
    const ids = [
      await queue.enqueue({ type: "count", payload: 1 }),
      await queue.enqueue({ type: "count", payload: 2 }),
    ];
    await queue.enqueue({ type: "count", payload: 3 }, { delayMs: 60_000 });
    const orphan = await queue.enqueue({ type: "orphan", payload: 4 });
    assert.deepEqual(await queue.depth(), { pending: 4, deadLetters: 0 }, "before start");

    const handled = new Events<Delivery>();
    queue.handle("count", recordInto(handled));
    queue.start();
    for (const id of ids) await handled.waitFor((d) => d.id === id, "a count delivery");
    await lines.waitFor(logOf(DEAD, orphan), "the orphan's dead letter");
    await queue.close(); // settles the handlers in flight
    assert.deepEqual(await queue.depth(), { pending: 1, deadLetters: 1 }, "after delivery");
  });

  Deno.test(`${name} rejects invalid messages with a TypeError`, async () => {
    await using storage = await target.setup();
    const { log } = eventLogger();
    const queue = await storage.open({ log });
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    const cases: Array<[string, () => Promise<string>, RegExp]> = [
      ["empty type", () => queue.enqueue({ type: "", payload: 1 }), /type must be a non-empty/],
      [
        "long type",
        () => queue.enqueue({ type: "x".repeat(201), payload: 1 }),
        /201 characters, at most 200/,
      ],
      ["bigint", () => queue.enqueue({ type: "t", payload: { n: 1n } }), /payload\.n is a bigint/],
      ["cycle", () => queue.enqueue({ type: "t", payload: cycle }), /payload\.self is a circular/],
      ["undefined", () => queue.enqueue({ type: "t", payload: undefined }), /payload is undefined/],
      ["function", () => queue.enqueue({ type: "t", payload: [() => 1] }), /payload\[0\] is a/],
      ["date", () => queue.enqueue({ type: "t", payload: new Date() }), /Date, not a plain/],
      ["NaN", () => queue.enqueue({ type: "t", payload: NaN }), /payload is NaN/],
      ["delay", () => queue.enqueue({ type: "t", payload: 1 }, { delayMs: -1 }), /delayMs must/],
      [
        "backoff",
        () => queue.enqueue({ type: "t", payload: 1 }, { backoffMs: [10, -5] }),
        /backoffMs must/,
      ],
    ];
    for (const [what, enqueue, message] of cases) {
      await assert.rejects(enqueue, (error: unknown) => {
        assert.ok(error instanceof TypeError, `${what}: ${error}`);
        assert.match(error.message, message, what);
        assert.match(error.message, /^Cannot enqueue/, what);
        return true;
      });
    }
    assert.ok(await queue.enqueue({ type: "t".repeat(200), payload: { optional: undefined } }));
    assert.deepEqual(await queue.depth(), { pending: 1, deadLetters: 0 });
  });

  Deno.test(`${name} close waits for the handler in flight`, async () => {
    await using storage = await target.setup();
    const { log } = eventLogger();
    const queue = await storage.open({ log });
    const started = new Events<Delivery>();
    const release = Promise.withResolvers<void>();
    const order: string[] = [];
    queue.handle("slow", async (d) => {
      started.push(d);
      await release.promise;
      order.push("handler finished");
    });
    queue.start();
    const id = await queue.enqueue({ type: "slow", payload: 1 });
    await started.waitFor((d) => d.id === id, "the slow handler to start");
    const closing = queue.close(10_000).then(() => order.push("close resolved"));
    // Give close every chance to resolve early before the handler is released.
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(order, []);
    release.resolve();
    await closing;
    assert.deepEqual(order, ["handler finished", "close resolved"]);
    assert.deepEqual(await queue.depth(), { pending: 0, deadLetters: 0 }, "the message was acked");
  });

  Deno.test(`${name} close gives up on a stuck handler after its timeout`, async () => {
    await using storage = await target.setup();
    const { log, lines } = eventLogger();
    const queue = await storage.open({ log });
    const started = new Events<Delivery>();
    const stuck = Promise.withResolvers<void>();
    queue.handle("stuck", async (d) => {
      started.push(d);
      await stuck.promise;
    });
    queue.start();
    const id = await queue.enqueue({ type: "stuck", payload: 1 });
    await started.waitFor((d) => d.id === id, "the stuck handler to start");
    const before = performance.now();
    await queue.close(150);
    assert.ok(performance.now() - before >= 140, "close waited for its timeout");
    assert.ok(lines.items.some((l) => l.message === "Queue closed with handlers still running"));
    assert.equal((await queue.depth()).pending, 1, "the unfinished message is still pending");
    // The handler still finishes (and acks) if the process lives on.
    stuck.resolve();
    await lines.waitFor(logOf("Queue message handled", id), "the late ack");
  });

  Deno.test(`${name} delivers a message enqueued before a restart`, async () => {
    await using storage = await target.setup();
    const { log } = eventLogger();
    const before = await storage.open({ log });
    const id = await before.enqueue({ type: "durable", payload: { keep: "me" } });
    await storage.restart();

    const after = await storage.open({ log });
    const deliveries = new Events<Delivery>();
    after.handle("durable", recordInto(deliveries));
    after.start();
    const delivery = await deliveries.waitFor((d) => d.id === id, "the message after restart");
    assert.deepEqual(delivery, { id, type: "durable", payload: { keep: "me" }, attempt: 1 });
  });

  Deno.test({
    name: `${name} redelivers a message whose worker was killed in its handler`,
    ignore: !target.crashable,
    async fn() {
      await using storage = await target.setup();
      assert.ok(storage.workerArgs, "a crashable target names its worker arguments");
      const { log, lines } = eventLogger();
      const first = await storage.open({ log });
      const id = await first.enqueue({ type: "crash.test", payload: { n: 1 } });
      // No retries left after the interrupted attempt: it must become a dead letter instead.
      const last = await first.enqueue({ type: "crash.test", payload: { n: 2 } }, {
        backoffMs: [],
      });
      await storage.restart();

      const claimed = await runWorkerUntilClaimed(storage.workerArgs, [id, last]);
      assert.deepEqual(claimed, [{ id, attempt: 1 }, { id: last, attempt: 1 }]);

      // The killed worker's messages come back once its lease (or KV's running deadline)
      // expires; each reopen is a restart that may pick them up.
      const deadline = performance.now() + 20_000;
      let delivery: Delivery | undefined;
      while (!delivery && performance.now() < deadline) {
        const queue = await storage.open({ log });
        const deliveries = new Events<Delivery>();
        queue.handle("crash.test", recordInto(deliveries));
        queue.start();
        delivery = await deliveries.waitFor((d) => d.id === id, "redelivery", 1_000)
          .catch(() => undefined);
        if (delivery) await lines.waitFor(logOf(DEAD, last), "the abandoned message", 5_000);
        await storage.restart();
      }
      assert.ok(delivery, "the message was delivered again after the crash");
      assert.deepEqual(delivery.payload, { n: 1 });
      assert.ok(delivery.attempt >= 2, `attempt ${delivery.attempt} after a crash`);

      const queue = await storage.open({ log });
      const [letter] = await queue.deadLetters();
      assert.equal(letter?.id, last);
      assert.equal(letter?.attempts, 1);
      assert.match(letter?.error ?? "", /^Gave up after 1 attempt: the worker stopped/);
      assert.deepEqual(await queue.depth(), { pending: 0, deadLetters: 1 });
    },
  });

  if (target.shared) {
    Deno.test(`${name} hands each message to exactly one of two instances`, async () => {
      await using storage = await target.setup();
      const { log } = eventLogger();
      const one = await storage.open({ log: log.child("one") });
      const two = await storage.open({ log: log.child("two") });
      const handled = new Events<{ id: string; by: string }>();
      one.handle("fanout", recordInto(handled, (d) => ({ id: d.id, by: "one" })));
      two.handle("fanout", recordInto(handled, (d) => ({ id: d.id, by: "two" })));
      one.start();
      two.start();
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, i) => one.enqueue({ type: "fanout", payload: i })),
      );
      await handled.waitForCount(() => true, 50, "50 deliveries", 20_000);
      await Promise.all([one.close(), two.close()]);
      assert.equal(handled.items.length, 50, "no message was handled twice");
      assert.deepEqual(new Set(handled.items.map((h) => h.id)), new Set(ids));
      assert.deepEqual(await one.depth(), { pending: 0, deadLetters: 0 });
    });
  }
}

/** What the worker fixture prints when its handler takes a message. */
interface Claimed {
  id: string;
  attempt: number;
}

/**
 * Runs `tests/fixtures/queue_worker.ts` until it prints that its handler holds every message of
 * `ids`, then kills it with SIGKILL.
 */
async function runWorkerUntilClaimed(args: string[], ids: string[]): Promise<Claimed[]> {
  const script = new URL("../tests/fixtures/queue_worker.ts", import.meta.url);
  const config = new URL("../deno.json", import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", "--config", config.pathname, script.pathname, ...args],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  let text = "";
  try {
    for (;;) {
      const claimed = ids.map((id) => {
        const line = text.split("\n").find((l) => l.startsWith(`claimed ${id} `));
        return line && { id, attempt: Number(/attempt (\d+)/.exec(line)?.[1]) };
      });
      if (claimed.every((c) => c)) return claimed as Claimed[];
      const { value, done } = await reader.read();
      if (done) throw new Error(`The worker exited before claiming ${ids}; it printed: ${text}`);
      text += value;
    }
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch {
      // it has exited already
    }
    await child.status;
    await reader.cancel().catch(() => {});
  }
}
