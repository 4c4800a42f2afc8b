/**
 * `/api/v1/ws` end to end, against the runtime booted in-process: who may open it, how many,
 * what reaches whom (a webhook's events, another instance's events), and what ends it.
 */
import assert from "node:assert/strict";
import { revokeSession } from "../db/sessions.ts";
import type { Db } from "../db/client.ts";
import { uuidv7 } from "../lib/ids.ts";
import type { PipelineEvent } from "../lib/events.ts";
import { signAccessToken } from "../lib/jwt.ts";
import { accessTokenFor, insertTrader } from "./_fixtures.ts";
import {
  alert,
  type Answer,
  assertError,
  freshDatabase,
  JWT_SECRET,
  postAlert,
  startInProcess,
  waitFilled,
} from "./_pipeline.ts";
import { rawUpgrade, TestClient, upgradeHeaders, type WsMessage } from "./_ws.ts";

const WS_PATH = "/api/v1/ws";

function wsUrl(base: string, query = ""): string {
  return `${base.replace(/^http/, "ws")}${WS_PATH}${query}`;
}

async function tokenFor(db: Db, userId: string, role: "admin" | "trader" = "trader") {
  return await accessTokenFor(db, { id: userId, role }, { secret: JWT_SECRET, now: Date.now() });
}

async function insertAdmin(db: Db): Promise<string> {
  const id = uuidv7();
  await db.query(
    "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, 'x', 'admin')",
    [id, `admin-${id.slice(-8)}@example.com`],
  );
  return id;
}

/** A plain GET with the upgrade headers: the answer when the server refuses to upgrade. */
async function tryUpgrade(
  base: string,
  headers: Record<string, string>,
  query = "",
): Promise<Answer> {
  const res = await fetch(`${base}${WS_PATH}${query}`, { headers: upgradeHeaders(headers) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // left as text for the assertion message
  }
  return { status: res.status, headers: res.headers, body };
}

/** The next event (a message with an id), skipping pings and other control messages. */
async function nextEvent(client: TestClient): Promise<WsMessage> {
  for (;;) {
    const message = await client.next(15_000);
    if (typeof message.id === "string") return message;
  }
}

Deno.test("the WebSocket upgrade refuses missing, bad, expired, revoked, URL and cross-site credentials with 401", async () => {
  await using database = await freshDatabase();
  await using server = await startInProcess({ DATABASE_URL: database.url });
  const { db } = database;
  const trader = await insertTrader(db);
  const { token } = await tokenFor(db, trader.userId);
  const bearer = (t: string) => ({ "Sec-WebSocket-Protocol": `trendedge.v1, bearer.${t}` });

  const none = assertError(await tryUpgrade(server.url, {}), 401, "AUTHENTICATION_REQUIRED");
  assert.match(none.message, /bearer\.<token>/);
  assertError(await tryUpgrade(server.url, bearer("not-a-jwt")), 401, "AUTHENTICATION_REQUIRED");
  const expired = await signAccessToken(
    {
      userId: trader.userId,
      role: "trader",
      sessionId: (await tokenFor(db, trader.userId)).sessionId,
    },
    { secret: JWT_SECRET, now: Date.now() - 2 * 3_600_000 },
  );
  assertError(await tryUpgrade(server.url, bearer(expired)), 401, "AUTHENTICATION_REQUIRED");
  const revoked = await tokenFor(db, trader.userId);
  await revokeSession(db, {
    sessionId: revoked.sessionId,
    userId: trader.userId,
    reason: "test",
    now: Date.now(),
  });
  assertError(await tryUpgrade(server.url, bearer(revoked.token)), 401, "AUTHENTICATION_REQUIRED");
  // A token in the URL is never read.
  assertError(
    await tryUpgrade(server.url, {}, `?access_token=${token}&token=${token}&jwt=${token}`),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  // The cookie from a page on another site.
  const foreign = assertError(
    await tryUpgrade(server.url, {
      Cookie: `te_access=${token}`,
      Origin: "https://evil.example.net",
    }),
    401,
    "AUTHENTICATION_REQUIRED",
  );
  assert.match(foreign.message, /origin "https:\/\/evil\.example\.net"/);
  // Neither is a WebSocket closed after opening: `new WebSocket` fails as well.
  await assert.rejects(
    TestClient.connect(wsUrl(server.url), { token: "not-a-jwt" }),
    /401/,
  );

  // Not ours to speak, or not a WebSocket at all.
  assertError(
    await tryUpgrade(server.url, { "Sec-WebSocket-Protocol": `chat, bearer.${token}` }),
    400,
    "VALIDATION_ERROR",
  );
  const plain = await fetch(`${server.url}${WS_PATH}`, {
    headers: { "Sec-WebSocket-Protocol": `trendedge.v1, bearer.${token}` },
  });
  assert.equal(plain.status, 400);
  await plain.body?.cancel();
  assertError(
    await tryUpgrade(server.url, bearer(token), "?resume=x%20y"),
    400,
    "VALIDATION_ERROR",
  );

  // The same credentials done right open it.
  const viaProtocol = await TestClient.connect(wsUrl(server.url), { token });
  const viaCookie = await TestClient.connect(wsUrl(server.url), {
    headers: { Cookie: `te_access=${token}`, Origin: server.url },
  });
  try {
    assert.equal(viaProtocol.socket.protocol, "trendedge.v1");
    assert.equal(viaCookie.socket.protocol, "");
    for (const client of [viaProtocol, viaCookie]) {
      assert.equal((await client.next()).type, "hello");
    }
  } finally {
    await viaProtocol.close();
    await viaCookie.close();
  }
  // The 101 answers with our subprotocol only (never the token), through the whole middleware.
  const raw = await rawUpgrade(Number(new URL(server.url).port), WS_PATH, bearer(token));
  try {
    const head = raw.head.toLowerCase();
    assert.match(head, /^http\/1.1 101/);
    assert.match(
      head,
      /\r\nsec-websocket-protocol: trendedge\.v1\r\n|\r\nsec-websocket-protocol: trendedge\.v1$/,
    );
    assert.ok(!head.includes(token.toLowerCase()), "the token is not echoed");
    assert.match(head, /\r\nx-request-id: /);
    assert.match(head, /\r\nx-content-type-options: nosniff/);
  } finally {
    raw.conn.close();
  }
  assert.ok(
    !JSON.stringify(server.lines).includes(token),
    "no token in the log",
  );
});

Deno.test("a user's 11th WebSocket is refused with 429 while other users connect", async () => {
  await using database = await freshDatabase();
  await using server = await startInProcess({ DATABASE_URL: database.url });
  const { db } = database;
  const ann = await insertTrader(db);
  const bob = await insertTrader(db);
  const annToken = (await tokenFor(db, ann.userId)).token;
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      clients.push(await TestClient.connect(wsUrl(server.url), { token: annToken }));
    }
    const refused = assertError(
      await tryUpgrade(server.url, {
        "Sec-WebSocket-Protocol": `trendedge.v1, bearer.${annToken}`,
      }),
      429,
      "RATE_LIMITED",
    );
    assert.match(refused.message, /at most 10 connections per user/);
    clients.push(
      await TestClient.connect(wsUrl(server.url), {
        token: (await tokenFor(db, bob.userId)).token,
      }),
    );
    const metrics = await fetch(`${server.url}/metrics`, {
      headers: { "X-API-Key": server.runtime.config.operatorApiKey },
    });
    assert.match(await metrics.text(), /\ntrendedge_websocket_connections 11\n/);
  } finally {
    for (const client of clients) await client.close();
  }
});

Deno.test("a WebSocket closes with 4401 once its session is revoked", async () => {
  await using database = await freshDatabase();
  await using server = await startInProcess({ DATABASE_URL: database.url }, {
    hub: { recheckMs: 100 },
  });
  const { db } = database;
  const trader = await insertTrader(db);
  const revoked = await tokenFor(db, trader.userId);
  const kept = await tokenFor(db, trader.userId);
  const ending = await TestClient.connect(wsUrl(server.url), { token: revoked.token });
  const staying = await TestClient.connect(wsUrl(server.url), {
    headers: { Cookie: `te_access=${kept.token}` },
  });
  try {
    await revokeSession(db, {
      sessionId: revoked.sessionId,
      userId: trader.userId,
      reason: "logout",
      now: Date.now(),
    });
    const closed = await ending.waitClosed(15_000);
    assert.deepEqual([closed.code, closed.reason], [4401, "session expired"]);
    assert.equal(staying.socket.readyState, WebSocket.OPEN, "the other session's socket stays");
  } finally {
    await ending.close();
    await staying.close();
  }
});

Deno.test("a webhook's events reach the trader's WebSockets, resume after a reconnect, and reach nobody else", async () => {
  await using database = await freshDatabase();
  await using server = await startInProcess({ DATABASE_URL: database.url });
  const { db } = database;
  const { runtime } = server;
  const ann = await insertTrader(db);
  const bob = await insertTrader(db);
  const adminId = await insertAdmin(db);
  let annWs = await TestClient.connect(wsUrl(server.url), {
    token: (await tokenFor(db, ann.userId)).token,
  });
  const bobWs = await TestClient.connect(wsUrl(server.url), {
    token: (await tokenFor(db, bob.userId)).token,
  });
  const adminWs = await TestClient.connect(wsUrl(server.url), {
    token: (await tokenFor(db, adminId, "admin")).token,
  });
  try {
    const first = await postAlert(server.url, alert(ann.key, { id: "first" }));
    assert.equal(first.status, 202);
    const signalId = first.body.signal_id as string;
    const received = await nextEvent(annWs);
    assert.equal(received.type, "signal.received");
    assert.equal(received.channel, "signals");
    assert.equal(received.signal_id, signalId);
    assert.equal(received.account_id, ann.accountId);
    assert.equal(received.data.ticker, "NASDAQ:AAPL");
    let filled: WsMessage;
    do filled = await nextEvent(annWs); while (
      !(filled.type === "trade.updated" && filled.data.status === "filled")
    );
    assert.equal(filled.channel, "trades");
    assert.equal(filled.signal_id, signalId);

    // Away while the next signal runs; back with the last id seen.
    await annWs.close();
    const missed: PipelineEvent[] = [];
    const unsubscribe = runtime.bus.subscribe((e) => {
      if (e.userId === ann.userId) missed.push(e);
    });
    try {
      const second = await postAlert(server.url, alert(ann.key, { id: "second" }));
      assert.equal(second.status, 202);
      await waitFilled(runtime, db, second.body.signal_id);
    } finally {
      unsubscribe();
    }
    annWs = await TestClient.connect(wsUrl(server.url, `?resume=${filled.id}`), {
      token: (await tokenFor(db, ann.userId)).token,
    });
    assert.equal((await annWs.next()).type, "hello");
    const replayed: WsMessage[] = [];
    for (let i = 0; i < missed.length; i++) replayed.push(await nextEvent(annWs));
    assert.deepEqual(
      replayed.map((m) => [m.type, m.signal_id, m.data.status]),
      missed.map((e) => [e.type, e.signalId, e.data.status]),
    );
    assert.deepEqual(await annWs.next(), {
      type: "resumed",
      after: filled.id,
      count: missed.length,
    });

    // Bob and the admin: their own events are the first they get; Ann's never came.
    for (const [client, userId] of [[bobWs, bob.userId], [adminWs, adminId]] as const) {
      runtime.bus.publish({
        type: "webhook_key.expiring",
        userId,
        at: new Date().toISOString(),
        data: { mine: userId },
      });
      const own = await nextEvent(client);
      assert.deepEqual([own.type, own.channel, own.data.mine], [
        "webhook_key.expiring",
        "system",
        userId,
      ]);
    }
  } finally {
    for (const client of [annWs, bobWs, adminWs]) await client.close();
  }
});

Deno.test("a WebSocket client on one instance sees the events of a signal that arrived at another", async () => {
  await using database = await freshDatabase();
  const env = { DATABASE_URL: database.url, CLUSTER: "true", DATABASE_POOL_SIZE: "3" };
  await using a = await startInProcess({ ...env, INSTANCE_ID: "a" });
  await using b = await startInProcess({ ...env, INSTANCE_ID: "b" });
  const trader = await insertTrader(database.db);
  const client = await TestClient.connect(wsUrl(b.url), {
    token: (await tokenFor(database.db, trader.userId)).token,
  });
  try {
    assert.equal((await client.next()).type, "hello");
    const posted = await postAlert(a.url, alert(trader.key, { id: "at-a" }));
    assert.equal(posted.status, 202);
    const seen: WsMessage[] = [];
    let event: WsMessage;
    do {
      event = await nextEvent(client);
      seen.push(event);
    } while (!(event.type === "trade.updated" && event.data.status === "filled"));
    assert.ok(
      seen.some((e) => e.type === "signal.received" && e.signal_id === posted.body.signal_id),
      "the signal's arrival at the other instance",
    );
    assert.equal(event.signal_id, posted.body.signal_id);
  } finally {
    await client.close();
  }
});
