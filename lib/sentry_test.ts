import assert from "node:assert/strict";
import { startSentrySink } from "../tests/fakes/sentry.ts";
import { createLogger } from "./log.ts";
import { createErrorReporter, scrubEvent, tracesSampleRateFor } from "./sentry.ts";

Deno.test("error log lines reach Sentry with tags, a parsed stack and no secret", async () => {
  await using sink = startSentrySink();
  const reporter = createErrorReporter({ dsn: sink.dsn, environment: "staging", release: "9.9.9" });
  try {
    const log = createLogger("trendedge", { sink: (line) => reporter.line(line) });
    log.info("Not an error");
    const failure = new Error("connection refused", { cause: new Error("ECONNREFUSED") });
    log.child("http").error("Request failed", {
      request_id: "req-1234abcd",
      user_id: "0190a5e2-7c1d-7000-8000-000000000001",
      path: "/api/v1/webhooks/tradingview",
      password: "hunter2-do-not-send",
      webhook_key: "whk_secretsecretsecret",
      error: { name: failure.name, message: failure.message, stack: failure.stack },
    });
    log.critical("Unhandled promise rejection", { note: "no error object" });
    assert.equal(await reporter.flush(5_000), true);

    const event = await sink.waitFor((e) => e.tags?.request_id === "req-1234abcd");
    assert.equal(event.environment, "staging");
    assert.equal(event.release, "trendedge@9.9.9");
    assert.equal(event.level, "error");
    assert.equal(event.tags.user_id, "0190a5e2-7c1d-7000-8000-000000000001");
    assert.equal(event.tags.logger, "trendedge.http");
    assert.equal(event.user.id, "0190a5e2-7c1d-7000-8000-000000000001");
    const exception = event.exception.values.at(-1);
    assert.equal(exception.value, "connection refused");
    assert.ok(exception.stacktrace.frames.length > 0, "the stack was parsed");
    assert.ok(exception.stacktrace.frames.every((f: unknown) => typeof f === "object"));
    const critical = await sink.waitFor((e) => e.message === "Unhandled promise rejection");
    assert.equal(critical.level, "fatal");
    assert.equal(sink.events.length, 2, "the info line was not sent");
    const raw = sink.envelopes.join("\n");
    assert.ok(!raw.includes("hunter2-do-not-send"));
    assert.ok(!raw.includes("whk_secretsecretsecret"));
  } finally {
    await reporter.close(2_000);
  }
});

Deno.test("the reporter caps events per minute and counts what it dropped", async () => {
  await using sink = startSentrySink();
  const reporter = createErrorReporter({
    dsn: sink.dsn,
    environment: "production",
    release: "1.0.0",
    maxPerMinute: 3,
  });
  try {
    const log = createLogger("trendedge", { sink: (line) => reporter.line(line) });
    for (let i = 0; i < 10; i++) log.error(`Database unreachable ${i}`);
    await reporter.flush(5_000);
    assert.equal(sink.events.length, 3);
    assert.equal(reporter.dropped, 7);
  } finally {
    await reporter.close(2_000);
  }
});

Deno.test("scrubEvent drops cookies, auth headers, bodies, query strings and secret fields", () => {
  const event = scrubEvent({
    request: {
      url: "https://app.example/api/v1/me?access_token=abc",
      query_string: "access_token=abc",
      cookies: { te_access: "jwt" },
      data: '{"password":"x"}',
      headers: { Authorization: "Bearer jwt", "User-Agent": "curl", "X-API-Key": "op" },
    },
    extra: { refresh_token: "rt_abc", note: "fine" },
  });
  assert.deepEqual(event.request, {
    url: "https://app.example/api/v1/me",
    headers: { "User-Agent": "curl" },
  });
  assert.deepEqual(event.extra, { refresh_token: "[REDACTED]", note: "fine" });
});

Deno.test("traces are sampled by environment", () => {
  assert.equal(tracesSampleRateFor("production"), 0.05);
  assert.equal(tracesSampleRateFor("staging"), 0.25);
  assert.equal(tracesSampleRateFor("development"), 0);
});
