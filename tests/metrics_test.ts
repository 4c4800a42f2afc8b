/** `/metrics` on the running process: operator key, route patterns, pipeline and live gauges. */
import assert from "node:assert/strict";
import { insertTrader } from "./_fixtures.ts";
import { kvBreakerStore } from "../db/breaker_store.ts";
import { alert, eventually, postAlert, startInProcess, waitFilled } from "./_pipeline.ts";

const OPERATOR_KEY = "metrics-test-operator-key-0123";

Deno.test("/metrics exposes requests by route pattern, signals, orders, breakers and queue depth", async () => {
  await using server = await startInProcess({ OPERATOR_API_KEY: OPERATOR_KEY });
  const { db } = server.runtime;
  const trader = await insertTrader(db);
  const answer = await postAlert(server.url, alert(trader.key));
  assert.equal(answer.status, 202);
  await waitFilled(server.runtime, db, answer.body.signal_id);
  const invalid = await postAlert(server.url, alert(trader.key, { quantity: "lots" }));
  assert.equal(invalid.status, 400);
  // Two ids, one route pattern.
  for (const id of [answer.body.signal_id, crypto.randomUUID()]) {
    await (await fetch(`${server.url}/api/v1/signals/${id}`)).body?.cancel();
  }

  const refused = await fetch(`${server.url}/metrics`);
  assert.equal(refused.status, 401);
  await refused.body?.cancel();
  const wrong = await fetch(`${server.url}/metrics`, { headers: { "X-API-Key": "nope" } });
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();

  const res = await fetch(`${server.url}/metrics`, {
    headers: { Authorization: `Bearer ${OPERATOR_KEY}` },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const value = (line: RegExp) => {
    const match = text.split("\n").find((l) => line.test(l));
    assert.ok(match, `no line matches ${line}`);
    return Number(match.split(" ").at(-1));
  };
  assert.equal(
    value(
      /^trendedge_http_requests_total\{method="POST",route="\/api\/v1\/webhooks\/tradingview",status="202"\}/,
    ),
    1,
  );
  assert.equal(
    value(
      /^trendedge_http_requests_total\{method="GET",route="\/api\/v1\/signals\/:id",status="401"\}/,
    ),
    2,
  );
  assert.ok(!text.includes(answer.body.signal_id), "raw paths never become labels");
  assert.equal(
    value(
      /^trendedge_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/webhooks\/tradingview"\}/,
    ),
    2,
  );
  assert.equal(value(/^trendedge_signals_total\{status="accepted"\}/), 1);
  assert.equal(value(/^trendedge_signals_total\{status="rejected"\}/), 1);
  assert.ok(value(/^trendedge_orders_total\{broker="paper",status="filled"\}/) >= 1);
  assert.equal(
    value(
      new RegExp(`^trendedge_breaker_state\\{account_id="${trader.accountId}".*state="closed"\\}`),
    ),
    1,
  );
  assert.ok(value(/^trendedge_queue_messages\{state="dead_letter"\}/) >= 0);
  assert.ok(value(/^trendedge_event_loop_lag_seconds /) >= 0);
  assert.ok(value(/^trendedge_process_memory_bytes\{kind="rss"\}/) > 0);
  assert.equal(value(/^trendedge_metrics_collect_errors /), 0);
});

Deno.test("an open circuit breaker is listed by readiness but does not fail it", async () => {
  await using server = await startInProcess({});
  const trader = await insertTrader(server.runtime.db);
  // The account's breaker is open for ten minutes when its executor starts.
  await kvBreakerStore(server.runtime.kv).save(trader.accountId, {
    failures: [],
    openUntil: Date.now() + 600_000,
  });
  const refused = await postAlert(server.url, alert(trader.key));
  assert.equal(refused.status, 202);
  await eventually("the signal is refused by the open breaker", async () => {
    const [row] = await server.runtime.db.query<{ status: string }>(
      "SELECT status FROM signals WHERE id = $1",
      [refused.body.signal_id],
    );
    return row?.status === "rejected";
  });
  const ready = await fetch(`${server.url}/health/ready`);
  assert.equal(ready.status, 200);
  const body = await ready.json();
  assert.equal(body.status, "ok");
  assert.deepEqual(body.checks.brokers.breakers_not_closed, ["paper"]);
});
