/**
 * The circuit breaker end to end: TradingView alerts through the webhook of the runtime (on a fake
 * clock) for an Alpaca account, the real SDK against the fake Alpaca answering 401 three times.
 * The breaker opens on the third failure, refuses the next alert loudly without calling Alpaca,
 * shows in `/health/ready` and the accounts API, and after the 10-minute cooldown the next alert is
 * the probe that closes it.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../lib/clock.ts";
import { accessTokenFor, insertTrader } from "./_fixtures.ts";
import { startFakeAlpaca } from "./fakes/alpaca.ts";
import {
  eventually,
  insertAlpacaAccount,
  JWT_SECRET,
  postAlert,
  startInProcess,
} from "./_pipeline.ts";

const TERMINAL = ["filled", "rejected", "failed", "canceled"];

Deno.test("three broker failures open an account's breaker, which refuses alerts until the cooldown's probe closes it", async () => {
  const clock = new FakeClock(Date.now());
  await using alpaca = startFakeAlpaca({ prices: { AAPL: "190" }, now: () => clock.now() });
  await using server = await startInProcess({ ALPACA_BASE_URL: alpaca.url }, { clock });
  const { db } = server.runtime;
  const trader = await insertTrader(db);
  await insertAlpacaAccount(db, trader.userId);
  const { token } = await accessTokenFor(db, { id: trader.userId, role: "trader" }, {
    secret: JWT_SECRET,
    now: clock.now(),
  });
  let sent = 0;
  /** One alert through the webhook; resolves with its signal once it has ended. */
  const alertEnds = async () => {
    const res = await postAlert(server.url, {
      key: trader.key,
      account: "alpaca-paper",
      ticker: "AAPL",
      action: "buy",
      quantity: 1,
      price: 190,
      id: `breaker-${++sent}`,
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const id: string = res.body.signal_id;
    let row: { status: string; reason: string | null } | undefined;
    await eventually(`alert ${sent} has ended`, async () => {
      [row] = await db.query<{ status: string; reason: string | null }>(
        "SELECT status, reason FROM signals WHERE id = $1",
        [id],
      );
      return TERMINAL.includes(row?.status ?? "");
    });
    return { id, ...row! };
  };
  const posts = () =>
    alpaca.requests.filter((r) => r.method === "POST" && r.path === "/v2/orders").length;
  const breakers = async () => {
    const ready = await fetch(`${server.url}/health/ready`);
    assert.equal(ready.status, 200, "an open breaker stops one account, not the instance");
    return (await ready.json()).checks.brokers.breakers_not_closed;
  };
  const apiBreaker = async () => {
    const res = await fetch(`${server.url}/api/v1/accounts`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    return body.data.find((a: { alias: string }) => a.alias === "alpaca-paper")?.breaker;
  };

  // Three refusals of the keys within three minutes: the third opens the breaker.
  alpaca.faults.add({
    method: "POST",
    path: "/v2/orders",
    kind: "status",
    status: 401,
    body: { code: 40110000, message: "request is not authorized" },
    times: 3,
  });
  for (let i = 0; i < 3; i++) {
    if (i > 0) await clock.advance(60_000);
    const failed = await alertEnds();
    assert.notEqual(failed.status, "filled");
    assert.match(failed.reason ?? "", /not authorized/);
  }
  assert.equal(posts(), 3);
  assert.deepEqual(await breakers(), ["alpaca-paper"]);
  assert.equal(await apiBreaker(), "open");
  const openedAt = clock.now();

  // While open: refused at once with the reopening time; Alpaca never sees it.
  await clock.advance(60_000);
  const refused = await alertEnds();
  assert.equal(refused.status, "rejected");
  assert.equal(
    refused.reason,
    `Cannot place order: the circuit breaker for "alpaca-paper" is open until ${
      new Date(openedAt + 600_000).toISOString()
    }`,
  );
  assert.equal(posts(), 3);

  // After the cooldown the next alert is the probe: Alpaca answers, the breaker closes.
  await clock.advance(600_000);
  const probe = await alertEnds();
  assert.equal(probe.status, "filled");
  assert.equal(posts(), 4);
  assert.deepEqual(await breakers(), []);
  assert.equal(await apiBreaker(), "closed");
  const journaled = await db.query<{ event: string }>(
    "SELECT event FROM journal WHERE event LIKE 'breaker.%' ORDER BY id",
  );
  assert.deepEqual(journaled.map((j) => j.event), ["breaker.opened", "breaker.closed"]);
});
