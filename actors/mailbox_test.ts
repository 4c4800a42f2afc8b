import assert from "node:assert/strict";
import { Mailbox, MailboxClosedError } from "./mailbox.ts";
import { flush } from "./_testing.ts";

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>): { settled: boolean } {
  const state = { settled: false };
  promise.then(() => state.settled = true, () => state.settled = true);
  return state;
}

Deno.test("mailbox delivers messages in FIFO order across ring wrap-around and growth", async () => {
  const mailbox = new Mailbox<number>({ capacity: 40 });
  const received: number[] = [];
  let next = 0;
  // Interleave so the head moves around the ring while it grows from 16 to 40 slots.
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 3 + round * 3 && mailbox.size < 40; i++) await mailbox.send(next++);
    for (let i = 0; i < 2; i++) received.push((await mailbox.receive()) as number);
  }
  while (mailbox.size > 0) received.push((await mailbox.receive()) as number);
  assert.deepEqual(received, Array.from({ length: next }, (_, i) => i));
});

Deno.test("mailbox keeps order through 100,000 queued messages", async () => {
  const n = 100_000;
  const mailbox = new Mailbox<number>({ capacity: n });
  for (let i = 0; i < n; i++) assert.equal(mailbox.trySend(i), true);
  assert.equal(mailbox.size, n);
  for (let i = 0; i < n; i++) assert.equal(await mailbox.receive(), i);
  assert.equal(mailbox.size, 0);
});

Deno.test("mailbox makes a sender wait while full and admits it when space frees", async () => {
  const mailbox = new Mailbox<string>({ capacity: 1 });
  await mailbox.send("a");
  const pending = mailbox.send("b");
  const state = track(pending);
  await flush();
  assert.equal(state.settled, false);
  assert.equal(mailbox.size, 1);

  assert.equal(await mailbox.receive(), "a");
  await pending;
  assert.equal(mailbox.size, 1);
  assert.equal(await mailbox.receive(), "b");
});

Deno.test("mailbox admits waiting senders in the order they came", async () => {
  const mailbox = new Mailbox<string>({ capacity: 2 });
  await mailbox.send("a");
  await mailbox.send("b");
  const sends = ["c", "d", "e"].map((msg) => mailbox.send(msg));
  const received: (string | undefined)[] = [];
  for (let i = 0; i < 5; i++) received.push(await mailbox.receive());
  await Promise.all(sends);
  assert.deepEqual(received, ["a", "b", "c", "d", "e"]);
});

Deno.test("mailbox trySend refuses when full or when senders wait, and never waits", async () => {
  const mailbox = new Mailbox<string>({ capacity: 1 });
  assert.equal(mailbox.trySend("a"), true);
  assert.equal(mailbox.trySend("b"), false);
  const waiting = mailbox.send("c");
  assert.equal(await mailbox.receive(), "a");
  await waiting;
  // "c" took the free slot: a newcomer never overtakes a waiting sender.
  assert.equal(mailbox.trySend("d"), false);
  assert.equal(await mailbox.receive(), "c");
  assert.equal(mailbox.trySend("d"), true);
});

Deno.test("mailbox hands a message straight to a waiting receiver", async () => {
  const mailbox = new Mailbox<string>({ capacity: 1 });
  const receiving = mailbox.receive();
  await mailbox.send("a");
  assert.equal(await receiving, "a");
  assert.equal(mailbox.size, 0);
});

Deno.test("mailbox close wakes waiting senders with MailboxClosedError", async () => {
  const mailbox = new Mailbox<string>({ capacity: 1, name: "executor" });
  await mailbox.send("a");
  const waiting = mailbox.send("b");
  mailbox.close();
  await assert.rejects(waiting, {
    name: "MailboxClosedError",
    message: 'Cannot send to mailbox "executor": it is closed',
  });
  await assert.rejects(mailbox.send("c"), MailboxClosedError);
  assert.throws(() => mailbox.trySend("d"), MailboxClosedError);
  assert.equal(mailbox.closed, true);
});

Deno.test("mailbox receive returns queued messages, then undefined after close", async () => {
  const mailbox = new Mailbox<string>({ capacity: 4 });
  await mailbox.send("a");
  await mailbox.send("b");
  mailbox.close();
  assert.equal(await mailbox.receive(), "a");
  assert.equal(await mailbox.receive(), "b");
  assert.equal(await mailbox.receive(), undefined);
});

Deno.test("mailbox close wakes a waiting receiver with undefined", async () => {
  const mailbox = new Mailbox<string>({ capacity: 4 });
  const receiving = mailbox.receive();
  mailbox.close();
  assert.equal(await receiving, undefined);
});

Deno.test("mailbox receive rejects when its signal aborts and takes no message", async () => {
  const mailbox = new Mailbox<string>({ capacity: 4 });
  const abort = new AbortController();
  const receiving = mailbox.receive(abort.signal);
  abort.abort(new Error("stop waiting"));
  await assert.rejects(receiving, { message: "stop waiting" });
  await mailbox.send("a");
  assert.equal(mailbox.size, 1);
  assert.equal(await mailbox.receive(), "a");
});

Deno.test("mailbox drain takes queued messages and those of waiting senders", async () => {
  const mailbox = new Mailbox<string>({ capacity: 2 });
  await mailbox.send("a");
  await mailbox.send("b");
  const waiting = mailbox.send("c");
  assert.deepEqual(mailbox.drain(), ["a", "b", "c"]);
  await waiting;
  assert.equal(mailbox.size, 0);
});

Deno.test("mailbox refuses a capacity that is not a positive integer", () => {
  for (const capacity of [0, -1, 1.5, Infinity, NaN]) {
    assert.throws(() => new Mailbox({ capacity }), RangeError);
  }
  assert.equal(new Mailbox({ capacity: 3 }).capacity, 3);
});
