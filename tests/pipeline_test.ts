/**
 * The hot path end to end: a TradingView alert in, a journaled paper fill out, and every way an
 * alert can be refused (bad input, duplicates, rate limit, signatures, a dead database) answered
 * with the standard error body without ever acknowledging what is not on disk.
 */
import assert from "node:assert/strict";
import { sign } from "../lib/standard_webhooks.ts";
import { accessTokenFor, insertTrader } from "./_fixtures.ts";
import { startServer } from "./_process.ts";
import { startTcpProxy } from "./_tcp_proxy.ts";
import {
  alert,
  type Answer,
  assertError,
  count,
  eventually,
  freshDatabase,
  JWT_SECRET,
  postAlert,
  startInProcess,
  tempDir,
  waitFilled,
} from "./_pipeline.ts";

const SIGNALS = "SELECT count(*)::int AS n FROM signals";

Deno.test("a webhook to the real server becomes a journaled paper fill, readable through the API", async () => {
  await using data = await tempDir("trendedge-pipeline-process-");
  await using database = await freshDatabase();
  await using server = await startServer({
    DATA_DIR: data.path,
    DATABASE_URL: database.url,
    JWT_SECRET,
  });
  const { db } = database;
  const trader = await insertTrader(db);

  const res = await postAlert(
    server.url,
    alert(trader.key, { ticker: "NASDAQ:AAPL", quantity: "2", price: "190.25", id: "entry-1" }),
  );
  assert.equal(res.status, 202, JSON.stringify(res.body));
  assert.deepEqual(Object.keys(res.body), ["signal_id"]);
  const id: string = res.body.signal_id;
  assert.match(res.headers.get("x-request-id") ?? "", /.{8,}/);

  // A real process: the database is the only window on the executor.
  await eventually("the signal is filled", async () => {
    const [row] = await db.query<{ status: string }>("SELECT status FROM signals WHERE id = $1", [
      id,
    ]);
    return row?.status === "filled";
  });

  const [signal] = await db.query<Record<string, unknown>>(
    "SELECT user_id, account_id, source, symbol, side, quantity::text, raw_body, filled_at FROM signals WHERE id = $1",
    [id],
  );
  assert.equal(signal?.user_id, trader.userId);
  assert.equal(signal?.account_id, trader.accountId);
  assert.equal(signal?.source, "tradingview");
  assert.equal(signal?.symbol, "AAPL");
  assert.equal(signal?.side, "buy");
  assert.equal(signal?.quantity, "2");
  assert.ok(signal?.filled_at instanceof Date);
  assert.ok(!String(signal?.raw_body).includes(trader.key), "the key is not stored in clear");

  const orders = await db.query<Record<string, unknown>>(
    "SELECT id, client_order_id, status, symbol, side, quantity::text, filled_quantity::text FROM orders WHERE signal_id = $1",
    [id],
  );
  assert.equal(orders.length, 1);
  const [order] = orders;
  assert.equal(order?.client_order_id, id, "client_order_id is the signal id");
  assert.equal(order?.status, "filled");
  assert.equal(order?.filled_quantity, "2");
  const fills = await db.query<Record<string, unknown>>(
    "SELECT quantity::text, price::text FROM fills WHERE order_id = $1",
    [order?.id],
  );
  assert.equal(fills.length, 1);
  assert.equal(fills[0]?.quantity, "2");
  assert.ok(Number(fills[0]?.price) > 0);
  const [position] = await db.query<Record<string, unknown>>(
    "SELECT quantity::text FROM positions WHERE account_id = $1 AND symbol = 'AAPL'",
    [trader.accountId],
  );
  assert.equal(Number(position?.quantity), 2);
  assert.equal(
    await count(
      db,
      "SELECT count(*)::int AS n FROM trades WHERE entry_signal_id = $1 AND status = 'open'",
      [id],
    ),
    1,
  );
  const events = (await db.query<{ event: string }>(
    "SELECT event FROM journal WHERE signal_id = $1 ORDER BY id",
    [id],
  )).map((r) => r.event);
  for (const event of ["signal.accepted", "order.created", "order.filled", "signal.filled"]) {
    assert.ok(events.includes(event), `journal has ${event}: ${events}`);
  }
  assert.ok(events.indexOf("signal.accepted") < events.indexOf("order.created"));
  assert.ok(events.indexOf("order.created") < events.indexOf("order.filled"));

  // The trader reads it back with an access token.
  const { token } = await accessTokenFor(db, { id: trader.userId, role: "trader" }, {
    secret: JWT_SECRET,
    now: Date.now(),
  });
  const read = await fetch(`${server.url}/api/v1/signals/${id}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(read.status, 200);
  const detail = await read.json();
  assert.equal(detail.id, id);
  assert.equal(detail.status, "filled");
  assert.equal(detail.sender_id, "entry-1");
  assert.equal(detail.orders.length, 1);
  assert.equal(detail.orders[0].status, "filled");
  assert.equal(detail.orders[0].client_order_id, id);
  assert.ok(
    (detail.journal as Array<{ event: string }>).some((j) => j.event === "signal.filled"),
  );
  const anonymous = await fetch(`${server.url}/api/v1/signals/${id}`);
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
});

Deno.test("text/plain and a missing content type are read like JSON; a form body is 415", async () => {
  await using database = await freshDatabase();
  await using app = await startInProcess({ DATABASE_URL: database.url });
  const { key } = await insertTrader(database.db);

  const asText = await postAlert(app.url, JSON.stringify(alert(key, { id: "text" })), {
    contentType: "text/plain; charset=utf-8",
  });
  assert.equal(asText.status, 202, JSON.stringify(asText.body));
  const untyped = await postAlert(app.url, JSON.stringify(alert(key, { id: "untyped" })), {
    contentType: null,
  });
  assert.equal(untyped.status, 202, JSON.stringify(untyped.body));
  const json = await postAlert(app.url, alert(key, { id: "json" }));
  assert.equal(json.status, 202, JSON.stringify(json.body));
  for (const res of [asText, untyped, json]) {
    await waitFilled(app.runtime, database.db, res.body.signal_id);
  }

  const form = await postAlert(
    app.url,
    new URLSearchParams({ key, ticker: "AAPL", action: "buy", quantity: "1" }).toString(),
    { contentType: "application/x-www-form-urlencoded" },
  );
  const error = assertError(form, 415, "UNSUPPORTED_MEDIA_TYPE");
  assert.match(error.message, /application\/x-www-form-urlencoded/);
  assert.equal(await count(database.db, SIGNALS), 3, "the 415 stored nothing");
  assert.equal(
    await count(database.db, "SELECT count(*)::int AS n FROM signals WHERE status = 'filled'"),
    3,
  );
});

Deno.test("every kind of bad alert answers the standard error body and journals only what it should", async () => {
  await using database = await freshDatabase();
  await using app = await startInProcess({ DATABASE_URL: database.url });
  const { db } = database;
  const trader = await insertTrader(db);
  const { key } = trader;
  const answers: Answer[] = [];
  const post = async (...args: Parameters<typeof postAlert>) => {
    const answer = await postAlert(...args);
    answers.push(answer);
    return answer;
  };
  const stored = () => count(db, SIGNALS);
  const seen = new Set<string>();
  /** The one rejected row written since the last call: its reason and its journal entry. */
  const rejectedRow = async (message: RegExp) => {
    const rows = (await db.query<{ id: string; reason: string }>(
      "SELECT id, reason FROM signals WHERE status = 'rejected'",
    )).filter((r) => !seen.has(r.id));
    assert.equal(rows.length, 1, "one new rejected signal row");
    const row = rows[0]!;
    seen.add(row.id);
    assert.match(row.reason, message);
    const journal = await db.query<{ event: string; data: { reason: string; details: unknown } }>(
      "SELECT event, data FROM journal WHERE signal_id = $1",
      [row.id],
    );
    assert.deepEqual(journal.map((j) => j.event), ["signal.rejected"]);
    assert.match(journal[0]!.data.reason, message);
    assert.ok(Array.isArray(journal[0]!.data.details));
    return row;
  };

  // Malformed JSON: no key can be read, so nothing is stored.
  const malformed = await post(app.url, `{"key": "${key}", "ticker": "AAPL",`, {
    contentType: "text/plain",
  });
  assert.match(assertError(malformed, 400, "VALIDATION_ERROR").message, /not valid JSON/);
  assert.equal(await stored(), 0);

  // A valid key with invalid fields: 400 naming each one, and a rejected row with the reason.
  const invalid = await post(
    app.url,
    alert(key, { action: "hold", quantity: -3, order_type: "limit", bogus: 1 }),
  );
  const fields = assertError(invalid, 400, "VALIDATION_ERROR").details.map((d) => d.field).sort();
  assert.deepEqual(fields, ["action", "bogus", "limit_price", "quantity"]);
  assert.equal(await stored(), 1);
  const invalidRow = await rejectedRow(/invalid fields/);
  assert.equal(
    await count(db, "SELECT count(*)::int AS n FROM orders WHERE signal_id = $1", [invalidRow.id]),
    0,
  );

  // Missing, unknown or revoked key: 401, one message for all, nothing stored.
  const revoked = await insertTrader(db);
  await db.query("UPDATE webhook_keys SET revoked_at = now() WHERE id = $1", [revoked.keyId]);
  const unknownKey = `whk_${"A".repeat(43)}`;
  const messages = new Set<string>();
  for (
    const body of [
      alert(key, { key: undefined }),
      alert(unknownKey),
      alert(revoked.key),
      alert("not-a-key"),
    ]
  ) {
    messages.add(assertError(await post(app.url, body), 401, "AUTHENTICATION_REQUIRED").message);
  }
  assert.equal(messages.size, 1, `one message: ${[...messages]}`);
  assert.equal(await stored(), 1);

  // Over 64 KiB: declared by Content-Length, or streamed chunked without one.
  const padding = "x".repeat(9_000);
  const big = JSON.stringify(
    alert(key, {
      strategy: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`p${i}`, padding])),
    }),
  );
  assert.ok(big.length > 64 * 1024);
  assertError(await post(app.url, big), 413, "PAYLOAD_TOO_LARGE");
  const bytes = new TextEncoder().encode(big);
  let sent = 0;
  const chunked = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(sent, sent + 4096));
      sent += 4096;
    },
  });
  assertError(
    await post(app.url, chunked, { contentType: "application/json" }),
    413,
    "PAYLOAD_TOO_LARGE",
  );
  assert.equal(await stored(), 1);

  // Deeper than 5 levels (the object itself is level 1).
  const deep = await post(app.url, alert(key, { strategy: { a: { b: { c: { d: {} } } } } }));
  assert.match(assertError(deep, 400, "VALIDATION_ERROR").message, /deeper than 5/);
  // Objects 5 levels deep are fine (so the limit, not the shape, refused the one above).
  const fiveDeep = await post(
    app.url,
    alert(key, { id: "five-deep", strategy: { a: { b: { c: { leaf: 1 } } } } }),
  );
  assert.equal(fiveDeep.status, 202, JSON.stringify(fiveDeep.body));

  // A 10,001-character string is refused; 10,000 pass the reader.
  const long = await post(app.url, alert(key, { strategy: { note: "y".repeat(10_001) } }));
  const longError = assertError(long, 400, "VALIDATION_ERROR");
  assert.match(longError.message, /longer than 10000/);
  assert.deepEqual(longError.details.map((d) => d.field), ["strategy.note"]);
  const atLimit = await post(
    app.url,
    alert(key, { id: "at-limit", strategy: { note: "y".repeat(10_000) } }),
  );
  assert.equal(atLimit.status, 202, JSON.stringify(atLimit.body));
  assert.equal(await stored(), 3);

  // An account the trader does not have: 422, journaled.
  const noAccount = await post(app.url, alert(key, { account: "nope" }));
  const noAccountError = assertError(noAccount, 422, "UNPROCESSABLE_ENTITY");
  assert.deepEqual(noAccountError.details.map((d) => d.field), ["account"]);
  await rejectedRow(/no broker account "nope"/);

  // A ticker no broker symbol matches: 422, journaled.
  const unmappable = await post(app.url, alert(key, { ticker: "ZZZ1!" }));
  const unmappableError = assertError(unmappable, 422, "UNPROCESSABLE_ENTITY");
  assert.deepEqual(unmappableError.details.map((d) => d.field), ["ticker"]);
  const unmappableRow = await rejectedRow(/Cannot map symbol "ZZZ1!"/);
  assert.equal(
    await count(db, "SELECT count(*)::int AS n FROM signals WHERE id = $1 AND account_id = $2", [
      unmappableRow.id,
      trader.accountId,
    ]),
    1,
    "the rejected row names the account",
  );

  // Invalid UTF-8 (a lone continuation byte inside a string).
  const prefix = new TextEncoder().encode(`{"key": "${key}", "ticker": "AA`);
  const suffix = new TextEncoder().encode(`PL", "action": "buy", "quantity": 1}`);
  const broken = new Uint8Array([...prefix, 0x80, 0xff, ...suffix]);
  const utf8 = await post(app.url, broken, { contentType: "application/json" });
  assert.match(assertError(utf8, 400, "VALIDATION_ERROR").message, /UTF-8/);

  // An alert whose TradingView placeholder was never filled in.
  const placeholder = await post(app.url, alert(key, { ticker: "{{ticker}}" }));
  const placeholderError = assertError(placeholder, 400, "VALIDATION_ERROR");
  const tickerDetail = placeholderError.details.find((d) => d.field === "ticker");
  assert.ok(tickerDetail, JSON.stringify(placeholderError.details));
  assert.match(tickerDetail.message, /placeholder "\{\{ticker\}\}"/);
  await rejectedRow(/invalid fields/);

  assert.ok(answers.every((a) => a.status < 500), "no 5xx");
  // Only the two good alerts were accepted; they alone may become orders.
  assert.equal(
    await count(db, "SELECT count(*)::int AS n FROM signals WHERE status <> 'rejected'"),
    2,
  );
  assert.equal(
    await count(db, "SELECT count(*)::int AS n FROM signals WHERE status = 'rejected'"),
    4,
  );
  assert.equal(
    await count(
      db,
      "SELECT count(*)::int AS n FROM orders o JOIN signals s ON s.id = o.signal_id WHERE s.status = 'rejected'",
    ),
    0,
  );
});

Deno.test("the same alert twice answers 202 then 200 with the first signal's id", async () => {
  await using database = await freshDatabase();
  await using app = await startInProcess({ DATABASE_URL: database.url });
  const { key } = await insertTrader(database.db);
  // No id: the dedup key is the hash of the normalized alert ("1" and 1 are the same).
  const first = await postAlert(app.url, alert(key, { quantity: 1 }));
  assert.equal(first.status, 202, JSON.stringify(first.body));
  const second = await postAlert(
    app.url,
    JSON.stringify(alert(key, { quantity: "1" })),
    { contentType: "text/plain" },
  );
  assert.equal(second.status, 200, JSON.stringify(second.body));
  assert.deepEqual(second.body, { duplicate: true, signal_id: first.body.signal_id });
  await waitFilled(app.runtime, database.db, first.body.signal_id);
  assert.equal(await count(database.db, SIGNALS), 1);
  assert.equal(await count(database.db, "SELECT count(*)::int AS n FROM orders"), 1);
});

Deno.test("100 identical alerts at once on PostgreSQL: one 202, 99 duplicates, one signal, one order", async () => {
  await using database = await freshDatabase();
  await using app = await startInProcess({
    DATABASE_URL: database.url,
    WEBHOOK_RATE_LIMIT_PER_MINUTE: "1000",
  });
  const { key } = await insertTrader(database.db);
  const body = alert(key, { id: "storm-1" });
  const answers = await Promise.all(
    Array.from({ length: 100 }, () => postAlert(app.url, body)),
  );
  const statuses = answers.map((a) => a.status);
  assert.equal(statuses.filter((s) => s === 202).length, 1, `statuses: ${statuses}`);
  assert.equal(statuses.filter((s) => s === 200).length, 99, `statuses: ${statuses}`);
  const accepted = answers.find((a) => a.status === 202)!.body.signal_id;
  for (const a of answers.filter((a) => a.status === 200)) {
    assert.deepEqual(a.body, { duplicate: true, signal_id: accepted });
  }
  await waitFilled(app.runtime, database.db, accepted);
  assert.equal(await count(database.db, SIGNALS), 1);
  assert.equal(await count(database.db, "SELECT count(*)::int AS n FROM orders"), 1);
  assert.equal(await count(database.db, "SELECT count(*)::int AS n FROM fills"), 1);
});

Deno.test("the per-key rate limit answers 429 with Retry-After and leaves other keys alone", async () => {
  await using database = await freshDatabase();
  await using app = await startInProcess({
    DATABASE_URL: database.url,
    WEBHOOK_RATE_LIMIT_PER_MINUTE: "5",
  });
  const { key } = await insertTrader(database.db);
  const other = await insertTrader(database.db);
  // The limiter slides over minute windows; keep the burst off a window edge.
  const intoMinute = Date.now() % 60_000;
  if (intoMinute > 57_000) await new Promise((r) => setTimeout(r, 60_200 - intoMinute));
  for (let i = 1; i <= 5; i++) {
    const res = await postAlert(app.url, alert(key, { id: `burst-${i}` }));
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.headers.get("x-ratelimit-limit"), "5");
    assert.equal(res.headers.get("x-ratelimit-remaining"), String(5 - i));
  }
  const sixth = await postAlert(app.url, alert(key, { id: "burst-6" }));
  const error = assertError(sixth, 429, "RATE_LIMITED");
  assert.match(error.message, /5 per minute/);
  const retryAfter = Number(sixth.headers.get("retry-after"));
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.equal(sixth.headers.get("x-ratelimit-limit"), "5");
  assert.equal(sixth.headers.get("x-ratelimit-remaining"), "0");
  assert.ok(Number(sixth.headers.get("x-ratelimit-reset")) * 1000 > Date.now() - 1000);
  assert.equal(await count(database.db, SIGNALS), 5, "the limited alert was not stored");

  const unaffected = await postAlert(app.url, alert(other.key, { id: "burst-6" }));
  assert.equal(unaffected.status, 202, JSON.stringify(unaffected.body));
  assert.equal(unaffected.headers.get("x-ratelimit-remaining"), "4");
});

Deno.test("Standard Webhooks: a signed alert is accepted, a bad or stale signature is 401, a replay is a duplicate", async () => {
  await using database = await freshDatabase();
  await using app = await startInProcess({ DATABASE_URL: database.url });
  const { db } = database;
  const { key } = await insertTrader(db);
  const signed = async (body: string, id: string, timestamp = Math.floor(Date.now() / 1000)) => {
    const ts = String(timestamp);
    return {
      "webhook-id": id,
      "webhook-timestamp": ts,
      "webhook-signature": await sign(key, { id, timestamp: ts }, body),
    };
  };
  const body = JSON.stringify(alert(key));

  const ok = await postAlert(app.url, body, {
    contentType: "application/json",
    headers: await signed(body, "msg_1"),
  });
  assert.equal(ok.status, 202, JSON.stringify(ok.body));
  const [row] = await db.query<{ source: string }>("SELECT source FROM signals WHERE id = $1", [
    ok.body.signal_id,
  ]);
  assert.equal(row?.source, "signed");

  const wrong = await postAlert(app.url, body, {
    contentType: "application/json",
    headers: { ...(await signed(body, "msg_2")), "webhook-signature": `v1,${btoa("nope")}` },
  });
  assert.match(assertError(wrong, 401, "AUTHENTICATION_REQUIRED").message, /does not match/);
  const tampered = await postAlert(app.url, body.replace('"quantity":1', '"quantity":9'), {
    contentType: "application/json",
    headers: await signed(body, "msg_3"),
  });
  assertError(tampered, 401, "AUTHENTICATION_REQUIRED");
  const stale = await postAlert(app.url, body, {
    contentType: "application/json",
    headers: await signed(body, "msg_4", Math.floor(Date.now() / 1000) - 6 * 60),
  });
  assert.match(assertError(stale, 401, "AUTHENTICATION_REQUIRED").message, /webhook-timestamp/);
  const partial = await postAlert(app.url, body, {
    contentType: "application/json",
    headers: { "webhook-id": "msg_5" },
  });
  assertError(partial, 401, "AUTHENTICATION_REQUIRED");
  assert.equal(await count(db, SIGNALS), 1, "refused signatures stored nothing");

  // The same webhook-id again (a sender's retry) is the same signal, even re-signed later.
  const replay = await postAlert(app.url, body, {
    contentType: "application/json",
    headers: await signed(body, "msg_1"),
  });
  assert.equal(replay.status, 200, JSON.stringify(replay.body));
  assert.deepEqual(replay.body, { duplicate: true, signal_id: ok.body.signal_id });
  await waitFilled(app.runtime, database.db, ok.body.signal_id);
  assert.equal(await count(db, SIGNALS), 1);
  assert.equal(await count(db, "SELECT count(*)::int AS n FROM orders"), 1);
});

Deno.test("with the database down the webhook answers 503 and acknowledges nothing; it recovers without a restart", async () => {
  await using database = await freshDatabase();
  const pg = new URL(database.url);
  await using proxy = startTcpProxy({ hostname: pg.hostname, port: Number(pg.port || 5432) });
  const viaProxy = new URL(database.url);
  viaProxy.port = String(proxy.port);
  await using app = await startInProcess({
    DATABASE_URL: viaProxy.toString(),
    DATABASE_POOL_SIZE: "4",
  });
  const { key } = await insertTrader(database.db); // straight to PostgreSQL, not through the proxy
  const before = await postAlert(app.url, alert(key, { id: "before" }));
  assert.equal(before.status, 202, JSON.stringify(before.body));
  await waitFilled(app.runtime, database.db, before.body.signal_id);

  proxy.cut();
  // The first post meets the connection the cut broke; the second waits on a pool that cannot
  // reconnect: both answer 503 in bounded time.
  for (const id of ["down-1", "down-2"]) {
    const down = await postAlert(app.url, alert(key, { id }), { timeoutMs: 10_000 });
    const error = assertError(down, 503, "SERVICE_UNAVAILABLE");
    assert.doesNotMatch(error.message, /ECONN|postgres|SELECT/i, "no internals in the body");
    assert.ok(Number(down.headers.get("retry-after")) > 0, "Retry-After");
  }
  assert.equal(await count(database.db, SIGNALS), 1, "nothing acknowledged while down");

  proxy.restore();
  const after = await postAlert(app.url, alert(key, { id: "down-1" }), { timeoutMs: 10_000 });
  assert.equal(after.status, 202, JSON.stringify(after.body));
  await waitFilled(app.runtime, database.db, after.body.signal_id);
  assert.equal(await count(database.db, SIGNALS), 2);
  assert.equal(await count(database.db, "SELECT count(*)::int AS n FROM orders"), 2);
});
