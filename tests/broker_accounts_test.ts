/**
 * An Alpaca account created through the API trades through the (fake) Alpaca API with the keys
 * it was given, decrypted by the executor; after new keys are PATCHed, the next order goes out
 * with them. The whole runtime runs in-process on PostgreSQL.
 */
import assert from "node:assert/strict";
import { alert, postAlert, startAlpacaRuntime, waitFilled } from "./_pipeline.ts";

const FIRST = {
  key_id: "PKE2EFIRST0000000001",
  secret_key: "e2e-first-secret-0123456789abcdefghij",
};
const SECOND = {
  key_id: "PKE2ESECOND000000002",
  secret_key: "e2e-second-secret-0123456789abcdefgh",
};

Deno.test("an Alpaca account created through the API trades with its keys, and with the new ones after a PATCH", async () => {
  await using stack = await startAlpacaRuntime(FIRST, { AAPL: "190.25" });
  const { alpaca, db, server, trader, token } = stack;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };

  const created = await api("POST", "/api/v1/accounts", {
    alias: "alpaca-e2e",
    broker: "alpaca",
    credentials: FIRST,
  });
  assert.equal(created.status, 201, created.text);

  const first = await postAlert(
    server.url,
    alert(trader.key, { account: "alpaca-e2e", ticker: "AAPL", id: "e2e-1" }),
  );
  assert.equal(first.status, 202, JSON.stringify(first.body));
  await waitFilled(server.runtime, db, first.body.signal_id);
  assert.equal(alpaca.orders.get(first.body.signal_id)?.status, "filled");
  const orderPosts = () =>
    alpaca.requests.filter((r) => r.method === "POST" && r.path === "/v2/orders");
  assert.deepEqual(orderPosts().map((r) => r.keyId), [FIRST.key_id]);

  // The trader rotates their Alpaca keys: Alpaca accepts the new pair, and trendedge is told.
  alpaca.addKey(SECOND.key_id, SECOND.secret_key);
  const patched = await api("PATCH", "/api/v1/accounts/alpaca-e2e", { credentials: SECOND });
  assert.equal(patched.status, 200, patched.text);
  const seenBefore = alpaca.requests.length;

  const second = await postAlert(
    server.url,
    alert(trader.key, { account: "alpaca-e2e", ticker: "AAPL", id: "e2e-2" }),
  );
  assert.equal(second.status, 202, JSON.stringify(second.body));
  await waitFilled(server.runtime, db, second.body.signal_id);
  assert.deepEqual(orderPosts().map((r) => r.keyId), [FIRST.key_id, SECOND.key_id]);
  const after = alpaca.requests.slice(seenBefore);
  assert.ok(after.length > 0);
  assert.deepEqual(
    [...new Set(after.map((r) => r.keyId))],
    [SECOND.key_id],
    "after the PATCH only the new key is used",
  );

  // The keys were never in an answer or a log line.
  const logged = JSON.stringify(server.lines);
  for (const secret of [FIRST.key_id, FIRST.secret_key, SECOND.key_id, SECOND.secret_key]) {
    assert.ok(!created.text.includes(secret) && !patched.text.includes(secret));
    assert.ok(!logged.includes(secret), `${secret} was logged`);
  }
  assert.ok(
    server.lines.some((l) => l.message === "Executor retired to pick up a changed account"),
  );
});
