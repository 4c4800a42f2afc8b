import assert from "node:assert/strict";
import { createLogger, redact, serializeError } from "./log.ts";

function capture(
  level: Parameters<typeof createLogger>[1] extends infer O ? O extends { level?: infer L } ? L
    : never
    : never,
) {
  const raw: string[] = [];
  const log = createLogger("trendedge", {
    level,
    sink: (l) => raw.push(l),
    now: () => Date.UTC(2026, 1, 11, 10, 30),
  });
  return { log, raw };
}

Deno.test("logger writes one JSON object per line with timestamp, level, logger and message first", () => {
  const { log, raw } = capture("info");
  log.info("Request completed", { status_code: 200, note: "two\nlines" });
  assert.equal(raw.length, 1);
  assert.ok(!raw[0]!.includes("\n"), "a newline in a field does not break the line");
  const line = JSON.parse(raw[0]!);
  assert.deepEqual(Object.keys(line).slice(0, 4), ["timestamp", "level", "logger", "message"]);
  assert.equal(line.timestamp, "2026-02-11T10:30:00.000Z");
  assert.equal(line.level, "INFO");
  assert.equal(line.logger, "trendedge");
  assert.equal(line.status_code, 200);
});

Deno.test("logger honours the level threshold", () => {
  const { log, raw } = capture("warning");
  log.debug("d");
  log.info("i");
  log.warning("w");
  log.error("e");
  log.critical("c");
  assert.deepEqual(raw.map((l) => JSON.parse(l).level), ["WARNING", "ERROR", "CRITICAL"]);
  assert.equal(log.enabled("info"), false);
  assert.equal(log.enabled("error"), true);
});

Deno.test("logger redacts secret-named fields at any depth and never their values", () => {
  const { log, raw } = capture("debug");
  log.info("Webhook received", {
    password: "hunter2",
    payload: {
      key: "whk_live_abc",
      ticker: "NQ1!",
      nested: { api_key: "k1", Authorization: "Bearer t0k" },
    },
    headers: [{ cookie: "session=s3cr3t" }],
    jwt_token: "eyJ...",
    broker_credentials: { secret: "x" },
    user_id: "u_1",
  });
  const text = raw[0]!;
  for (const secret of ["hunter2", "whk_live_abc", "k1", "Bearer t0k", "s3cr3t", "eyJ", '"x"']) {
    assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  }
  const line = JSON.parse(text);
  assert.equal(line.payload.ticker, "NQ1!");
  assert.equal(line.payload.key, "[REDACTED]");
  assert.equal(line.user_id, "u_1");
});

Deno.test("logger redacts broker credentials under every name they travel by", () => {
  const { log, raw } = capture("debug");
  log.info("Broker account", {
    body: { alias: "alpaca-1", credentials: { key_id: "PKLEAK1", secret_key: "sk-leak-1" } },
    pair: { secretKey: "sk-leak-2" },
    secret_key: "sk-leak-3",
    headers: { "APCA-API-KEY-ID": "PKLEAK4", "APCA-API-SECRET-KEY": "sk-leak-4" },
  });
  const text = raw[0]!;
  for (const secret of ["PKLEAK1", "sk-leak-1", "sk-leak-2", "sk-leak-3", "PKLEAK4", "sk-leak-4"]) {
    assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  }
  assert.equal(JSON.parse(text).body.alias, "alpaca-1");
});

Deno.test("child loggers extend the name and carry their fields", () => {
  const { log, raw } = capture("info");
  log.child("http", { instance: "a" }).child("ws").info("open");
  const line = JSON.parse(raw[0]!);
  assert.equal(line.logger, "trendedge.http.ws");
  assert.equal(line.instance, "a");
});

Deno.test("errors serialize with name, message, code, stack and cause", () => {
  const error = new Error("outer", {
    cause: Object.assign(new Error("inner"), { code: "ECONNREFUSED" }),
  });
  const s = serializeError(error);
  assert.equal(s.message, "outer");
  assert.match(String(s.stack), /outer/);
  assert.deepEqual({
    m: (s.cause as Record<string, unknown>).message,
    c: (s.cause as Record<string, unknown>).code,
  }, {
    m: "inner",
    c: "ECONNREFUSED",
  });
  assert.deepEqual(serializeError("plain"), { message: "plain" });
});

Deno.test("redact survives cycles of depth and odd values", () => {
  const deep: Record<string, unknown> = {};
  let cursor = deep;
  for (let i = 0; i < 20; i++) cursor = (cursor.next = {}) as Record<string, unknown>;
  assert.doesNotThrow(() => JSON.stringify(redact(deep)));
  assert.deepEqual(redact({ when: new Date(0), n: null, token: null }), {
    when: "1970-01-01T00:00:00.000Z",
    n: null,
    token: null,
  });
});
