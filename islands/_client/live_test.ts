/// <reference lib="dom" />
/**
 * LiveConnection against a real WebSocket server (Deno.serve on a random port, speaking the
 * `trendedge.v1` subprotocol), with a fake setTimeout that records each wait and runs it at once.
 */
import assert from "node:assert/strict";
import {
  backoffMs,
  LiveConnection,
  type LiveEnv,
  type LiveEvent,
  type LiveStatus,
} from "./live.ts";

/** One connection the server accepted. */
interface ServerSide {
  url: URL;
  socket: WebSocket;
  received: string[];
  closed: Promise<void>;
}

/** A WebSocket server handing each accepted (and opened) connection to the test. */
function startWsServer() {
  const accepted: ServerSide[] = [];
  const waiters: Array<(conn: ServerSide) => void> = [];
  let taken = 0;
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: listening.resolve },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "trendedge.v1" });
      const closed = Promise.withResolvers<void>();
      const conn: ServerSide = {
        url: new URL(req.url),
        socket,
        received: [],
        closed: closed.promise,
      };
      socket.onmessage = (e) => conn.received.push(String(e.data));
      socket.onclose = () => closed.resolve();
      socket.onerror = () => {};
      socket.onopen = () => {
        accepted.push(conn);
        waiters.shift()?.(conn);
      };
      return response;
    },
  );
  return {
    listening: listening.promise,
    /** The next connection not handed out yet (waits for it). */
    async next(timeoutMs = 5_000): Promise<ServerSide> {
      if (accepted.length > taken) return accepted[taken++]!;
      const got = Promise.withResolvers<ServerSide>();
      waiters.push(got.resolve);
      const timer = setTimeout(() => got.reject(new Error("no connection in time")), timeoutMs);
      try {
        const conn = await got.promise;
        taken++;
        return conn;
      } finally {
        clearTimeout(timer);
      }
    },
    get connections() {
      return accepted.length;
    },
    async [Symbol.asyncDispose]() {
      for (const conn of accepted) {
        if (conn.socket.readyState === WebSocket.OPEN) conn.socket.close(1001);
        await conn.closed;
      }
      await server.shutdown();
    },
  };
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000) {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A LiveConnection on `url` with recorded timers, refreshes and sign-outs. */
function harness(url: string) {
  const delays: number[] = [];
  const clients: WebSocket[] = [];
  const statuses: LiveStatus[] = [];
  const events: LiveEvent[] = [];
  const state = { refreshAnswer: true, refreshes: 0, signedOut: 0, resyncs: 0 };
  const env: LiveEnv = {
    url,
    open(target) {
      const socket = new WebSocket(target, ["trendedge.v1"]);
      clients.push(socket);
      return socket;
    },
    setTimeout(fn, ms) {
      delays.push(ms);
      queueMicrotask(fn);
      return 0;
    },
    refresh() {
      state.refreshes++;
      return Promise.resolve(state.refreshAnswer);
    },
    signedOut() {
      state.signedOut++;
    },
  };
  const live = new LiveConnection(env);
  live.listen({
    status: (s) => statuses.push(s),
    event: (e) => events.push(e),
    resync: () => state.resyncs++,
  });
  return {
    live,
    delays,
    statuses,
    events,
    state,
    async [Symbol.asyncDispose]() {
      live.stop();
      await Promise.all(
        clients.map((socket) =>
          socket.readyState === WebSocket.CLOSED
            ? undefined
            : new Promise((resolve) => socket.addEventListener("close", resolve, { once: true }))
        ),
      );
    },
  };
}

function send(conn: ServerSide, message: Record<string, unknown>) {
  conn.socket.send(JSON.stringify(message));
}

const EVENT = {
  channel: "signals",
  type: "signal.filled",
  at: "2026-11-22T08:00:00.000Z",
  data: {},
};

Deno.test("backoffMs waits 1, 2, 4, 8, 16, then 30 s", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 20].map(backoffMs),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
  );
});

Deno.test("drops without a hello back off 1, 2, 4, 8, 16, 30, 30 s; a hello resets it", async () => {
  await using server = startWsServer();
  const addr = await server.listening;
  await using client = harness(`ws://127.0.0.1:${addr.port}/api/v1/ws`);
  for (let i = 0; i < 7; i++) (await server.next()).socket.close(1011, "going down");
  const live = await server.next();
  assert.deepEqual(client.delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(client.live.status, "reconnecting");
  send(live, { type: "hello", last_id: null });
  await until(() => client.live.status === "live", "live");
  live.socket.close(1011, "again");
  await server.next();
  assert.deepEqual(client.delays.slice(7), [1000], "the hello reset the backoff");
  assert.deepEqual(
    client.statuses.slice(0, 3),
    ["connecting", "reconnecting", "reconnecting"],
  );
});

Deno.test("after a drop it reconnects with ?resume=<last event id>", async () => {
  await using server = startWsServer();
  const addr = await server.listening;
  await using client = harness(`ws://127.0.0.1:${addr.port}/api/v1/ws`);
  const first = await server.next();
  assert.equal(first.url.search, "", "the first connection resumes nothing");
  send(first, { type: "hello", last_id: "evt-0" });
  await until(() => client.live.status === "live", "live");
  assert.equal(client.live.lastId, "evt-0", "the hello says where the stream is");
  send(first, { ...EVENT, id: "evt-1", signal_id: "s1" });
  send(first, { ...EVENT, id: "evt-2", signal_id: "s2" });
  await until(() => client.events.length === 2, "two events");
  assert.deepEqual(client.events.map((e) => e.id), ["evt-1", "evt-2"]);
  first.socket.close(1012, "restart");
  const second = await server.next();
  assert.equal(second.url.searchParams.get("resume"), "evt-2");
  assert.equal(second.url.pathname, "/api/v1/ws");
});

Deno.test("a resync reaches the listeners and the next reconnect starts fresh", async () => {
  await using server = startWsServer();
  const addr = await server.listening;
  await using client = harness(`ws://127.0.0.1:${addr.port}/api/v1/ws`);
  const first = await server.next();
  send(first, { type: "hello", last_id: "evt-5" });
  send(first, { type: "resync" });
  await until(() => client.state.resyncs === 1, "the resync");
  assert.equal(client.live.lastId, undefined);
  first.socket.close(1011);
  const second = await server.next();
  assert.equal(second.url.searchParams.get("resume"), null);
});

Deno.test("pings are answered with pongs", async () => {
  await using server = startWsServer();
  const addr = await server.listening;
  await using client = harness(`ws://127.0.0.1:${addr.port}/api/v1/ws`);
  const conn = await server.next();
  send(conn, { type: "hello", last_id: null });
  send(conn, { type: "ping" });
  send(conn, { type: "ping" });
  await until(() => conn.received.length === 2, "two pongs");
  assert.deepEqual(conn.received.map((m) => JSON.parse(m)), [{ type: "pong" }, { type: "pong" }]);
  assert.equal(client.live.status, "live");
});

Deno.test("close 4401 renews the session once and reconnects at once", async () => {
  await using server = startWsServer();
  const addr = await server.listening;
  await using client = harness(`ws://127.0.0.1:${addr.port}/api/v1/ws`);
  (await server.next()).socket.close(4401, "unauthorized");
  const again = await server.next();
  assert.equal(client.state.refreshes, 1);
  assert.deepEqual(client.delays, [], "no backoff after a renewed session");
  send(again, { type: "hello", last_id: null });
  await until(() => client.live.status === "live", "live");
  assert.equal(client.state.signedOut, 0);
});

Deno.test("close 4401 with a session that cannot be renewed signs the page out", async () => {
  await using server = startWsServer();
  const addr = await server.listening;
  await using client = harness(`ws://127.0.0.1:${addr.port}/api/v1/ws`);
  client.state.refreshAnswer = false;
  (await server.next()).socket.close(4401, "unauthorized");
  await until(() => client.state.signedOut === 1, "the sign-out");
  assert.equal(client.live.status, "signed_out");
  assert.equal(client.statuses.at(-1), "signed_out");
  assert.equal(client.state.refreshes, 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.connections, 1, "no reconnect after signing out");
});
