import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";
import { startUpstashBridge, type UpstashBridge } from "./upstash_bridge.ts";

/** A client as the app builds one: no retries, no telemetry headers. */
function client(bridge: UpstashBridge, token = bridge.token): Redis {
  return new Redis({ url: bridge.url, token, retry: false, enableTelemetry: false });
}

/** A bridge plus a key prefix of this test's own, deleted afterwards. */
async function setup() {
  const bridge = await startUpstashBridge();
  const prefix = `test:${crypto.randomUUID()}:`;
  return {
    bridge,
    prefix,
    async [Symbol.asyncDispose]() {
      await bridge.deleteKeys(`${prefix}*`);
      await bridge.close();
    },
  };
}

Deno.test("@upstash/redis runs SET, GET, INCR and EXPIRE through the bridge on real Redis", async () => {
  await using t = await setup();
  const redis = client(t.bridge);
  assert.equal(await redis.set(`${t.prefix}name`, "trendedge ✓"), "OK");
  assert.equal(await redis.get(`${t.prefix}name`), "trendedge ✓", "base64 round trip keeps UTF-8");
  assert.equal(await redis.set(`${t.prefix}json`, { a: 1, b: [true] }), "OK");
  assert.deepEqual(await redis.get(`${t.prefix}json`), { a: 1, b: [true] });
  assert.equal(await redis.incr(`${t.prefix}n`), 1);
  assert.equal(await redis.incr(`${t.prefix}n`), 2);
  assert.equal(await redis.expire(`${t.prefix}n`, 60), 1);
  const ttl = await redis.ttl(`${t.prefix}n`);
  assert.ok(ttl > 0 && ttl <= 60, `ttl ${ttl}`);
  assert.equal(await redis.get(`${t.prefix}missing`), null);
  assert.ok(t.bridge.commands.some((c) => c[0] === "INCR"), "the commands reached the bridge");
});

Deno.test("@upstash/redis pipelines and transactions run in order through the bridge", async () => {
  await using t = await setup();
  const redis = client(t.bridge);
  const p = redis.pipeline();
  p.set(`${t.prefix}a`, "1");
  p.incr(`${t.prefix}a`);
  p.get(`${t.prefix}a`);
  p.lpush(`${t.prefix}list`, "x", "y");
  p.lrange(`${t.prefix}list`, 0, -1);
  assert.deepEqual(await p.exec(), ["OK", 2, 2, 2, ["y", "x"]]);

  const tx = redis.multi();
  tx.incr(`${t.prefix}a`);
  tx.incrby(`${t.prefix}a`, 10);
  assert.deepEqual(await tx.exec(), [3, 13]);

  const failing = redis.pipeline();
  failing.set(`${t.prefix}s`, "text");
  failing.incr(`${t.prefix}s`);
  const results = await failing.exec({ keepErrors: true });
  assert.equal(results[0]!.result, "OK");
  assert.match(String(results[1]!.error), /not an integer/);
});

Deno.test("@upstash/redis runs Upstash-flavoured Lua scripts through EVALSHA once loaded", async () => {
  await using t = await setup();
  const redis = client(t.bridge);
  const script = redis.createScript<number>(
    "#!lua flags=allow-key-locking\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])",
  );
  assert.equal(await script.exec([`${t.prefix}counter`], ["5"]), 5);
  assert.equal(await script.exec([`${t.prefix}counter`], ["2"]), 7);
  const names = t.bridge.commands.map((c) => c[0]);
  assert.ok(names.includes("EVAL"), `commands: ${names}`);
  assert.equal(names.at(-1), "EVALSHA", "the second run is served by the script's hash");
});

Deno.test("upstash bridge refuses a wrong token with 401, as Upstash does", async () => {
  await using t = await setup();
  await assert.rejects(() => client(t.bridge, "wrong").get(`${t.prefix}x`), /Unauthorized/);
  const res = await fetch(t.bridge.url, { method: "POST", body: '["PING"]' });
  assert.equal(res.status, 401);
  await res.body?.cancel();
});

Deno.test("upstash bridge answers command errors with 400 and the Redis message", async () => {
  await using t = await setup();
  const res = await fetch(t.bridge.url, {
    method: "POST",
    headers: { authorization: `Bearer ${t.bridge.token}` },
    body: JSON.stringify(["NOSUCHCOMMAND", "x"]),
  });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /unknown command/);
});
