import assert from "node:assert/strict";
import { systemClock } from "../lib/clock.ts";
import { EventBus, type PipelineEvent, type PipelineEventType } from "../lib/events.ts";
import { rawUpgrade, TestClient, watchedLogger, within, type WsMessage } from "../tests/_ws.ts";
import { createActor } from "./actor.ts";
import {
  attachSocket,
  channelOf,
  CLOSE_CODES,
  hubBehavior,
  type HubOptions,
  type HubStats,
  type Reservation,
} from "./hub.ts";

/**
 * A real hub behind a bare `Deno.serve`: the upgrade authenticates the `bearer.<token>`
 * subprotocol against `tokens` (token → user) and hands the socket over as routes/ws.ts does.
 */
function startHub(options: HubOptions = {}) {
  const watched = watchedLogger();
  const { log } = watched;
  const bus = new EventBus(log);
  const tokens = new Map<string, string>();
  const expiries = new Map<string, number>();
  const hub = createActor(
    "hub",
    hubBehavior({
      bus,
      clock: systemClock,
      authenticate: (token) => Promise.resolve(tokens.get(token) ?? null),
    }, { heartbeatMs: 60_000, ...options }),
    { log, capacity: 10_000 },
  );
  const running = hub.run();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) =>
      p.trim()
    );
    const token = offered.find((p) => p.startsWith("bearer."))?.slice("bearer.".length) ?? "";
    const userId = tokens.get(token);
    if (!userId) return new Response("unauthenticated", { status: 401 });
    const reservation = await hub.ref.ask<Reservation>(
      (reply) => ({ type: "reserve", userId, reply }),
      { timeoutMs: 2_000 },
    );
    if (!reservation.ok) return new Response("too many", { status: 429 });
    const { response, socket } = Deno.upgradeWebSocket(req, { protocol: "trendedge.v1" });
    const resume = new URL(req.url).searchParams.get("resume") ?? undefined;
    attachSocket(hub.ref, socket, {
      connId: reservation.connId,
      client: { userId, token, via: "bearer", expiresAt: expiries.get(token) },
      resumeAfter: resume,
    });
    return response;
  });
  const url = `ws://127.0.0.1:${server.addr.port}/ws`;
  let n = 0;
  return {
    ...watched,
    bus,
    hub,
    tokens,
    expiries,
    url,
    port: server.addr.port,
    /** A token for `userId`, valid until removed from `tokens`. */
    tokenFor(userId: string): string {
      const token = `token-${userId}-${++n}`;
      tokens.set(token, userId);
      return token;
    },
    connect(userId: string, options: { resume?: string; autoPong?: boolean } = {}) {
      const query = options.resume === undefined ? "" : `?resume=${options.resume}`;
      return TestClient.connect(`${url}${query}`, {
        token: this.tokenFor(userId),
        autoPong: options.autoPong,
      });
    },
    stats(): Promise<HubStats> {
      return hub.ref.ask<HubStats>((reply) => ({ type: "stats", reply }), { timeoutMs: 2_000 });
    },
    publish(userId: string, type: PipelineEventType, data: Record<string, unknown> = {}) {
      const event: PipelineEvent = { type, userId, at: new Date().toISOString(), data };
      bus.publish(event);
    },
    /** Stops the hub actor (the server keeps running until disposed). */
    stopHub(): Promise<void> {
      return running.stop(2_000);
    },
    async [Symbol.asyncDispose]() {
      await running.stop(2_000);
      await server.shutdown();
    },
  };
}

/** The next event message (one with an id), failing on anything else. */
async function nextEvent(client: TestClient): Promise<WsMessage> {
  const message = await client.nextNotPing();
  assert.ok(typeof message.id === "string", `an event, got ${JSON.stringify(message)}`);
  return message;
}

function seqOf(id: string): number {
  return Number(id.slice(id.lastIndexOf("-") + 1));
}

Deno.test("channelOf puts every event type on its channel", () => {
  const expected: Record<PipelineEventType, string> = {
    "signal.received": "signals",
    "signal.rejected": "signals",
    "trade.created": "trades",
    "trade.updated": "trades",
    "trade.closed": "trades",
    "breaker.opened": "system",
    "breaker.closed": "system",
    "position.mismatch": "system",
    "webhook_key.expiring": "system",
    "trendline.new": "trendlines",
    "trendline.alert": "trendlines",
    "trendline.retired": "trendlines",
    "scan.complete": "trendlines",
  };
  for (const [type, channel] of Object.entries(expected)) {
    assert.equal(channelOf(type as PipelineEventType), channel, type);
  }
  assert.equal(channelOf("trendline.broken" as PipelineEventType), "trendlines");
});

Deno.test("hub sends each user only their own events, numbered in order, on their channels", async () => {
  await using h = startHub();
  const ann1 = await h.connect("ann");
  const ann2 = await h.connect("ann");
  const bob = await h.connect("bob");
  try {
    for (const client of [ann1, ann2, bob]) {
      const hello = await client.next();
      assert.match(hello.last_id, /^[a-z0-9]+-0$/, "no event yet");
      assert.deepEqual({ ...hello, last_id: undefined }, {
        type: "hello",
        channels: ["signals", "trades", "trendlines", "system"],
        heartbeat_ms: 60_000,
        last_id: undefined,
      });
      assert.equal(client.socket.protocol, "trendedge.v1");
    }
    h.bus.publish({
      type: "signal.received",
      userId: "ann",
      accountId: "acc-1",
      signalId: "sig-1",
      at: "2026-01-05T14:30:00.000Z",
      data: { ticker: "AAPL" },
      origin: "another-instance",
    });
    h.publish("ann", "trade.updated", { status: "filled" });
    h.publish("bob", "breaker.opened", { alias: "paper" });
    for (const client of [ann1, ann2]) {
      const first = await nextEvent(client);
      assert.deepEqual(
        { ...first, id: undefined },
        {
          id: undefined,
          channel: "signals",
          type: "signal.received",
          at: "2026-01-05T14:30:00.000Z",
          account_id: "acc-1",
          signal_id: "sig-1",
          data: { ticker: "AAPL" },
        },
        "no user id and no origin on the wire",
      );
      const second = await nextEvent(client);
      assert.equal(second.type, "trade.updated");
      assert.equal(second.channel, "trades");
      assert.equal(seqOf(second.id), seqOf(first.id) + 1);
      assert.equal(second.id.split("-")[0], first.id.split("-")[0], "one epoch");
    }
    // Bob's event was published after Ann's: had any of hers reached him, it would come first.
    const own = await nextEvent(bob);
    assert.equal(own.type, "breaker.opened");
    assert.equal(own.channel, "system");
    assert.deepEqual(own.data, { alias: "paper" });
    assert.equal(ann1.queued + ann2.queued + bob.queued, 0);
  } finally {
    for (const client of [ann1, ann2, bob]) await client.close();
  }
});

Deno.test("a client that subscribes to some channels gets only their events", async () => {
  await using h = startHub();
  const client = await h.connect("ann");
  try {
    await client.next(); // hello
    client.send({ type: "subscribe", channels: ["trades"] });
    assert.deepEqual(await client.next(), { type: "subscribed", channels: ["trades"] });
    h.publish("ann", "signal.received");
    h.publish("ann", "breaker.opened");
    h.publish("ann", "trade.created");
    assert.equal((await nextEvent(client)).type, "trade.created");

    client.send({ type: "subscribe", channels: ["nonsense"] });
    const error = await client.next();
    assert.equal(error.type, "error");
    assert.match(error.message, /channels are signals, trades, trendlines, system/);
    client.send("not json");
    assert.deepEqual(await client.next(), {
      type: "error",
      message: "Cannot read the message: it is not JSON",
    });
    client.send({ type: "ping" });
    assert.deepEqual(await client.next(), { type: "pong" });
  } finally {
    await client.close();
  }
});

Deno.test("hub refuses the 11th connection of a user and accepts one again after a close", async () => {
  await using h = startHub();
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 10; i++) clients.push(await h.connect("ann"));
    await assert.rejects(h.connect("ann"), /429/);
    assert.deepEqual(await h.stats(), { connections: 10, users: 1, reserved: 0 });
    const other = await h.connect("bob");
    clients.push(other);

    const from = h.lines.length;
    await clients.shift()!.close();
    await h.waitFor(
      "the hub to see the close",
      (l) => l.message === "WebSocket closed by the client",
      {
        from,
      },
    );
    clients.push(await h.connect("ann"));
    assert.deepEqual(await h.stats(), { connections: 11, users: 2, reserved: 0 });
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test("hub pings every interval and closes a client that never answers", async () => {
  await using h = startHub({ heartbeatMs: 100 });
  const lively = await h.connect("ann");
  const silent = await h.connect("ann", { autoPong: false });
  try {
    const closed = await silent.waitClosed();
    assert.equal(closed.code, CLOSE_CODES.HEARTBEAT_TIMEOUT);
    assert.equal(closed.reason, "heartbeat timeout");
    assert.ok(silent.received.filter((m) => m.type === "ping").length >= 1, "it was pinged");
    // The one that answers stays, and keeps being pinged.
    const pings = lively.received.filter((m) => m.type === "ping").length;
    assert.ok(pings >= 2, `pinged ${pings} times`);
    await lively.nextOf("ping");
    assert.equal(lively.socket.readyState, WebSocket.OPEN);
    assert.deepEqual((await h.stats()).connections, 1);
  } finally {
    await lively.close();
    await silent.close();
  }
});

Deno.test("a client that reconnects with its last event id gets exactly what it missed, in order", async () => {
  await using h = startHub();
  const first = await h.connect("ann");
  let last: string;
  try {
    await first.next(); // hello
    h.publish("ann", "signal.received", { n: 1 });
    h.publish("ann", "trade.created", { n: 2 });
    await nextEvent(first);
    last = (await nextEvent(first)).id;
  } finally {
    await first.close();
  }
  // While away: two of Ann's events, one of Bob's.
  h.publish("ann", "trade.updated", { n: 3 });
  h.publish("bob", "trade.updated", { n: 99 });
  h.publish("ann", "trade.closed", { n: 4 });

  // Resuming with the upgrade.
  const second = await h.connect("ann", { resume: last });
  try {
    assert.equal((await second.next()).type, "hello");
    const missed = [await nextEvent(second), await nextEvent(second)];
    assert.deepEqual(missed.map((m) => [m.type, m.data.n]), [["trade.updated", 3], [
      "trade.closed",
      4,
    ]]);
    assert.ok(seqOf(missed[0]!.id) > seqOf(last) && seqOf(missed[1]!.id) > seqOf(missed[0]!.id));
    assert.deepEqual(await second.next(), { type: "resumed", after: last, count: 2 });
    h.publish("ann", "signal.received", { n: 5 });
    const live = await nextEvent(second);
    assert.equal(live.data.n, 5);
    last = live.id;
  } finally {
    await second.close();
  }

  // Resuming from the hello's last id, after a connection that saw no event.
  const quiet = await h.connect("ann");
  const { last_id: quietId } = await quiet.next();
  await quiet.close();
  h.publish("ann", "trade.updated", { n: 5.5 });
  const back = await h.connect("ann", { resume: quietId });
  try {
    await back.next(); // hello
    assert.equal((await nextEvent(back)).data.n, 5.5);
    assert.deepEqual(await back.next(), { type: "resumed", after: quietId, count: 1 });
    last = back.received.find((m) => m.id)!.id;
  } finally {
    await back.close();
  }

  // Resuming with a message, subscribed to trades only.
  h.publish("ann", "signal.received", { n: 6 });
  h.publish("ann", "trade.updated", { n: 7 });
  const third = await h.connect("ann");
  try {
    await third.next(); // hello
    third.send({ type: "subscribe", channels: ["trades"] });
    await third.next(); // subscribed
    third.send({ type: "resume", after: last });
    assert.equal((await nextEvent(third)).data.n, 7);
    assert.deepEqual(await third.next(), { type: "resumed", after: last, count: 1 });
  } finally {
    await third.close();
  }
});

Deno.test("a resume from an unknown or too old event id asks the client to resync", async () => {
  await using h = startHub({ bufferSize: 3 });
  const client = await h.connect("ann");
  let oldest: string;
  try {
    await client.next(); // hello
    h.publish("ann", "trade.updated", { n: 1 });
    oldest = (await nextEvent(client)).id;
    for (let n = 2; n <= 5; n++) h.publish("ann", "trade.updated", { n });
    for (let n = 2; n <= 5; n++) await nextEvent(client);

    client.send({ type: "resume", after: oldest });
    assert.deepEqual(await client.next(), { type: "resync", reason: "event id too old" });
    const epoch = oldest.slice(0, oldest.lastIndexOf("-"));
    for (const unknown of ["0abc-3", `${epoch}-999`, "no-dash-number-x", "x"]) {
      client.send({ type: "resume", after: unknown });
      assert.deepEqual(await client.next(), { type: "resync", reason: "unknown event id" });
    }
  } finally {
    await client.close();
  }
  // An id from before a restart of the hub (another epoch).
  await using restarted = startHub();
  const again = await restarted.connect("ann", { resume: oldest });
  try {
    await again.next(); // hello
    assert.deepEqual(await again.next(), { type: "resync", reason: "unknown event id" });
  } finally {
    await again.close();
  }
});

Deno.test("hub drops a client that stops reading, and the others get every event", async () => {
  await using h = startHub({ maxBufferedBytes: 256 * 1024, bufferSize: 10 });
  const token = h.tokenFor("ann");
  // A raw client: it completes the handshake, then never reads again.
  const { conn: slow, frames, head } = await rawUpgrade(h.port, "/ws", {
    "Sec-WebSocket-Protocol": `trendedge.v1, bearer.${token}`,
  });
  const fast = await h.connect("ann");
  try {
    assert.match(head, /^HTTP\/1.1 101/);
    await fast.next(); // hello
    assert.equal((await h.stats()).connections, 2);

    const blob = "x".repeat(64 * 1024);
    const dropped = () => h.lines.some((l) => l.reason === "slow consumer");
    let sent = 0;
    // One at a time, each awaited by the fast client, until the slow one's buffer overflows.
    while (!dropped() && sent < 2_000) {
      h.publish("ann", "trade.updated", { n: ++sent, blob });
      assert.equal((await nextEvent(fast)).data.n, sent);
    }
    assert.ok(dropped(), `dropped after ${sent} events of 64 KiB`);
    const line = h.lines.find((l) => l.reason === "slow consumer")!;
    assert.equal(line.level, "WARNING");
    assert.equal(line.code, CLOSE_CODES.SLOW_CONSUMER);
    assert.ok((line.buffered_bytes as number) > 256 * 1024);
    assert.equal((await h.stats()).connections, 1);
    for (let i = 0; i < 3; i++) {
      h.publish("ann", "trade.updated", { n: ++sent, blob });
      assert.equal((await nextEvent(fast)).data.n, sent, "the fast client is not held back");
    }
    // What the slow client would read once it catches up: the events, then the close.
    assert.deepEqual(await within(frames.closeFrame(), 30_000, "the close frame"), {
      code: CLOSE_CODES.SLOW_CONSUMER,
      reason: "slow consumer",
    });
  } finally {
    slow.close();
    await fast.close();
  }
});

Deno.test("hub closes a connection with 4401 when its token is no longer good, or expires", async () => {
  await using h = startHub({ recheckMs: 50 });
  const revoked = await h.connect("ann");
  const kept = await h.connect("ann");
  const expiring = h.tokenFor("bob");
  h.expiries.set(expiring, Date.now() + 150);
  const expired = await TestClient.connect(h.url, { token: expiring });
  try {
    await kept.next(); // hello
    const [revokedToken] = [...h.tokens.entries()].find(([, user]) => user === "ann")!;
    h.tokens.delete(revokedToken); // as if its session were revoked
    const closed = await revoked.waitClosed();
    assert.deepEqual([closed.code, closed.reason], [CLOSE_CODES.UNAUTHORIZED, "session expired"]);
    const ended = await expired.waitClosed();
    assert.deepEqual([ended.code, ended.reason], [CLOSE_CODES.UNAUTHORIZED, "token expired"]);
    // The other connection was checked as well (several times by now) and stays.
    assert.equal(kept.socket.readyState, WebSocket.OPEN);
    h.publish("ann", "trade.updated");
    assert.equal((await nextEvent(kept)).type, "trade.updated");
  } finally {
    await revoked.close();
    await kept.close();
    await expired.close();
  }
});

Deno.test("a check that cannot be made keeps the connection and is tried again", async () => {
  const watched = watchedLogger();
  let failing = true;
  const attempts: string[] = [];
  const bus = new EventBus(watched.log);
  const hub = createActor(
    "hub",
    hubBehavior({
      bus,
      clock: systemClock,
      authenticate: (token) => {
        attempts.push(token);
        return failing ? Promise.reject(new Error("database down")) : Promise.resolve(null);
      },
    }, { recheckMs: 30, heartbeatMs: 60_000 }),
    { log: watched.log },
  );
  const running = hub.run();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const reservation = await hub.ref.ask<Reservation>(
      (reply) => ({ type: "reserve", userId: "ann", reply }),
      { timeoutMs: 2_000 },
    );
    assert.ok(reservation.ok);
    const { response, socket } = Deno.upgradeWebSocket(req);
    attachSocket(hub.ref, socket, {
      connId: reservation.connId,
      client: { userId: "ann", token: "secret-token-value", via: "cookie" },
    });
    return response;
  });
  const client = await TestClient.connect(`ws://127.0.0.1:${server.addr.port}/`);
  try {
    const failed = (l: { message?: unknown }) => String(l.message).startsWith("Cannot check");
    await watched.waitFor("a failed check", failed);
    await watched.waitFor("a second failed check", failed, {
      from: watched.lines.findIndex(failed) + 1,
    });
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    assert.ok(
      !JSON.stringify(watched.lines).includes("secret-token-value"),
      "the token is never logged",
    );
    failing = false;
    assert.equal((await client.waitClosed()).code, CLOSE_CODES.UNAUTHORIZED);
    assert.ok(attempts.length >= 3);
  } finally {
    await client.close();
    await running.stop(2_000);
    await server.shutdown();
  }
});

Deno.test("stopping the hub closes every connection with 1001", async () => {
  await using h = startHub();
  const client = await h.connect("ann");
  try {
    await client.next(); // hello
    await h.stopHub();
    const closed = await client.waitClosed();
    assert.deepEqual([closed.code, closed.reason], [1001, "server shutting down"]);
  } finally {
    await client.close();
  }
});

Deno.test("a client message over 4 KiB closes the connection with 1009", async () => {
  await using h = startHub();
  const client = await h.connect("ann");
  try {
    await client.next(); // hello
    client.send(JSON.stringify({ type: "ping", pad: "x".repeat(5_000) }));
    const closed = await client.waitClosed();
    assert.equal(closed.code, CLOSE_CODES.MESSAGE_TOO_BIG);
  } finally {
    await client.close();
  }
});

Deno.test("an event that is not JSON is logged and skipped; the next one goes out", async () => {
  await using h = startHub();
  const client = await h.connect("ann");
  try {
    await client.next(); // hello
    h.publish("ann", "trade.updated", { n: 1n });
    h.publish("ann", "trade.updated", { n: 2 });
    const next = await nextEvent(client);
    assert.equal(next.data.n, 2);
    assert.equal(seqOf(next.id), 1, "no id was spent on the skipped event");
    const logged = h.lines.find((l) => l.message === "Cannot send an event that is not JSON");
    assert.equal(logged?.level, "ERROR");
  } finally {
    await client.close();
  }
});

Deno.test("hub refuses settings that are not positive integers", () => {
  const bus = new EventBus(watchedLogger().log);
  const deps = { bus, clock: systemClock, authenticate: () => Promise.resolve(null) };
  assert.throws(
    () => hubBehavior(deps, { heartbeatMs: 0 }),
    /Cannot create the hub: heartbeatMs must be a positive integer, got "0"/,
  );
  assert.throws(() => hubBehavior(deps, { maxConnectionsPerUser: 1.5 }), RangeError);
});
