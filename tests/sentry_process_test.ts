/**
 * The operator hears about a database outage: the real process, with SENTRY_DSN pointing at a
 * local Sentry ingest, answers webhooks 503 while PostgreSQL is unreachable and sends an event
 * tagged with the failed request's id; once the database is back it accepts again, no restart.
 */
import assert from "node:assert/strict";
import { insertTrader } from "./_fixtures.ts";
import { alert, freshDatabase, postAlert, tempDir } from "./_pipeline.ts";
import { startServer } from "./_process.ts";
import { startTcpProxy } from "./_tcp_proxy.ts";
import { startSentrySink } from "./fakes/sentry.ts";

Deno.test("a database outage answers 503, reaches Sentry with the request id, and heals", async () => {
  await using database = await freshDatabase();
  const pg = new URL(database.url);
  await using proxy = startTcpProxy({ hostname: pg.hostname, port: Number(pg.port || 5432) });
  const viaProxy = new URL(database.url);
  viaProxy.port = String(proxy.port);
  await using sink = startSentrySink();
  await using data = await tempDir("trendedge-sentry-");
  await using server = await startServer({
    DATABASE_URL: viaProxy.toString(),
    DATABASE_POOL_SIZE: "2",
    DATABASE_STATEMENT_TIMEOUT_MS: "1000",
    SENTRY_DSN: sink.dsn,
    DATA_DIR: data.path,
  });
  const { key } = await insertTrader(database.db);
  assert.equal((await postAlert(server.url, alert(key, { id: "before" }))).status, 202);

  proxy.cut();
  const down = await postAlert(server.url, alert(key, { id: "during" }));
  assert.equal(down.status, 503);
  assert.equal(down.body.error.code, "SERVICE_UNAVAILABLE");
  const requestId = down.headers.get("x-request-id")!;
  const event = await sink.waitFor((e) => e.tags?.request_id === requestId, 15_000);
  assert.equal(event.environment, "test");
  assert.equal(event.tags.path, "/api/v1/webhooks/tradingview");
  assert.match(JSON.stringify(event.exception ?? event.message), /database|connect|ECONN|timeout/i);
  assert.ok(!sink.envelopes.join("\n").includes(key), "the webhook key never leaves");

  proxy.restore();
  let after = await postAlert(server.url, alert(key, { id: "after" }));
  for (let i = 0; i < 20 && after.status === 503; i++) {
    await new Promise((r) => setTimeout(r, 250));
    after = await postAlert(server.url, alert(key, { id: "after" }));
  }
  assert.equal(after.status, 202, "accepts again without a restart");
});
