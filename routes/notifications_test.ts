import assert from "node:assert/strict";
import { createActor } from "../actors/actor.ts";
import { notifierBehavior, type NotifierCommand } from "../actors/notifier.ts";
import { channelsForEvent, getSealedChannel } from "../db/notifications.ts";
import type { Queue } from "../db/queue.ts";
import { apiAs, createTestApp } from "../tests/_app.ts";
import { createTestDb } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { startFakeTelegram } from "../tests/fakes/telegram.ts";

const BOT_TOKEN = "123456:AAH-route-test-secret-token";
const WEBHOOK = "https://discord.com/api/webhooks/424242/route-test-discord-secret";

Deno.test("notification channel routes: create, list without secrets, scope by user, test, delete, audit", async () => {
  await using testDb = await createTestDb("pglite");
  const { db } = testDb;
  await using telegram = startFakeTelegram();
  await using test = createTestApp({ db, env: { TELEGRAM_API_URL: telegram.url } });
  const notifier = createActor<unknown, NotifierCommand>(
    "notifier",
    notifierBehavior({
      db,
      cipher: test.deps.keyring,
      queue: {} as Queue,
      bus: test.deps.bus,
      clock: test.clock,
      send: { telegramApiUrl: telegram.url },
    }, { monitorIntervalMs: 0 }) as never,
    { log: test.deps.log, clock: test.clock },
  );
  const running = notifier.run();
  test.deps.notifier = notifier.ref;
  try {
    const alice = await insertTrader(db, { email: "alice@example.com" });
    const bob = await insertTrader(db, { email: "bob@example.com" });
    const as = (userId: string) => apiAs(test, userId);
    const a = as(alice.userId);
    const b = as(bob.userId);

    const created = await a("POST", "/api/v1/notification-channels", {
      kind: "telegram",
      name: "my phone",
      bot_token: BOT_TOKEN,
      chat_id: "1001",
      events: ["trade.updated"],
    });
    const createdText = await created.text();
    assert.equal(created.status, 201, createdText);
    const channel = JSON.parse(createdText);
    assert.equal(channel.kind, "telegram");
    assert.deepEqual(channel.events, ["trade.updated"]);

    const discord = await a("POST", "/api/v1/notification-channels", {
      kind: "discord",
      name: "server",
      webhook_url: WEBHOOK,
    });
    const discordText = await discord.text();
    assert.equal(discord.status, 201, discordText);

    for (
      const bad of [
        "https://evil.example.com/api/webhooks/1/abc",
        "http://127.0.0.1:9/api/webhooks/1/abc",
        "https://discord.com/api/users/1",
      ]
    ) {
      const res = await a("POST", "/api/v1/notification-channels", {
        kind: "discord",
        name: "x",
        webhook_url: bad,
      });
      assert.equal(res.status, 400, bad);
      await res.body?.cancel();
    }

    const listed = await a("GET", "/api/v1/notification-channels");
    const listText = await listed.text();
    assert.equal(listed.status, 200);
    assert.equal(JSON.parse(listText).data.length, 2);
    for (const text of [createdText, discordText, listText]) {
      assert.ok(!text.includes(BOT_TOKEN) && !text.includes("route-test-discord-secret"), text);
    }
    const bobs = await b("GET", "/api/v1/notification-channels");
    assert.deepEqual((await bobs.json()).data, []);

    const tested = await a("POST", `/api/v1/notification-channels/${channel.id}/test`);
    assert.deepEqual(await tested.json(), { ok: true });
    const sent = await telegram.requests.waitFor(() => true, "the test message");
    assert.equal(sent.token, BOT_TOKEN);
    assert.equal(sent.chatId, "1001");

    for (
      const [call, method, path] of [
        [b, "POST", `/api/v1/notification-channels/${channel.id}/test`],
        [b, "DELETE", `/api/v1/notification-channels/${channel.id}`],
        [a, "DELETE", "/api/v1/notification-channels/not-a-uuid"],
        [a, "POST", "/api/v1/notification-channels/not-a-uuid/test"],
      ] as const
    ) {
      const res = await call(method, path);
      assert.equal(res.status, 404, `${method} ${path}`);
      await res.body?.cancel();
    }
    const deleted = await a("DELETE", `/api/v1/notification-channels/${channel.id}`);
    assert.equal(deleted.status, 204);

    const audited = await db.query<{ action: string; data: unknown }>(
      `SELECT action, data FROM audit_log WHERE action LIKE 'notification_channel.%' ORDER BY id`,
    );
    assert.deepEqual(audited.map((r) => r.action), [
      "notification_channel.created",
      "notification_channel.created",
      "notification_channel.deleted",
    ]);
    const logged = JSON.stringify(test.lines) + JSON.stringify(audited);
    assert.ok(!logged.includes(BOT_TOKEN) && !logged.includes("route-test-discord-secret"));
  } finally {
    await running.stop(1_000);
  }
});

Deno.test("notification channel update: rename, choose events, disable, move a chat; checked, scoped, audited", async () => {
  await using testDb = await createTestDb("pglite");
  const { db } = testDb;
  await using test = createTestApp({ db });
  const alice = await insertTrader(db, { email: "alice@example.com" });
  const bob = await insertTrader(db, { email: "bob@example.com" });
  const as = (userId: string) => async (method: string, path: string, body?: unknown) => {
    const res = await apiAs(test, userId)(method, path, body);
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const a = as(alice.userId);
  const telegram = await a("POST", "/api/v1/notification-channels", {
    kind: "telegram",
    name: "phone",
    bot_token: BOT_TOKEN,
    chat_id: "1001",
  });
  const discord = await a("POST", "/api/v1/notification-channels", {
    kind: "discord",
    name: "desk",
    webhook_url: WEBHOOK,
  });
  const path = (id: string) => `/api/v1/notification-channels/${id}`;

  const renamed = await a("PATCH", path(telegram.body.id), {
    name: "  my phone ",
    events: ["signal.rejected"],
    chat_id: "@desk_alerts",
  });
  assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
  assert.equal(renamed.body.name, "my phone");
  assert.deepEqual(renamed.body.events, ["signal.rejected"]);
  assert.equal(renamed.body.chat_id, "@desk_alerts");
  assert.equal(renamed.body.enabled, true);
  const sealed = await getSealedChannel(db, alice.userId, telegram.body.id);
  assert.equal(sealed?.chatId, "@desk_alerts");
  assert.equal(await test.deps.keyring.decrypt(sealed!.secret), BOT_TOKEN, "the token is kept");
  assert.deepEqual(
    (await channelsForEvent(db, alice.userId, "signal.rejected")).map((c) => c.name),
    ["my phone", "desk"],
  );
  assert.deepEqual(
    (await channelsForEvent(db, alice.userId, "trade.updated")).map((c) => c.name),
    ["desk"],
  );

  // Disabled: the notifier's lookup no longer sees it; null events means every type again.
  const disabled = await a("PATCH", path(discord.body.id), { enabled: false });
  assert.equal(disabled.status, 200);
  assert.equal(disabled.body.enabled, false);
  assert.equal(disabled.body.name, "desk", "fields not given stay");
  assert.deepEqual(await channelsForEvent(db, alice.userId, "trade.updated"), []);
  const all = await a("PATCH", path(telegram.body.id), { events: null });
  assert.equal(all.body.events, null);
  assert.equal(all.body.chat_id, "@desk_alerts");
  assert.deepEqual(
    (await channelsForEvent(db, alice.userId, "trade.updated")).map((c) => c.name),
    ["my phone"],
  );

  // Bad input: a clear 400 naming the field, and nothing changes.
  for (
    const [id, body, field] of [
      [discord.body.id, { chat_id: "1002" }, "chat_id"],
      [telegram.body.id, {}, undefined],
      [discord.body.id, { bot_token: BOT_TOKEN }, "bot_token"],
      [telegram.body.id, { webhook_url: WEBHOOK }, "webhook_url"],
      [telegram.body.id, { bot_token: "not a token" }, "bot_token"],
      [
        discord.body.id,
        { webhook_url: "https://evil.example.com/api/webhooks/1/x" },
        "webhook_url",
      ],
      [telegram.body.id, { token: BOT_TOKEN }, undefined],
      [telegram.body.id, { name: "" }, "name"],
      [telegram.body.id, { events: ["no.such.event"] }, "events.0"],
      [telegram.body.id, { enabled: "no" }, "enabled"],
      [telegram.body.id, { chat_id: "not a chat" }, "chat_id"],
    ] as const
  ) {
    const res = await a("PATCH", path(id), body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(res.body.error.code, "VALIDATION_ERROR");
    if (field) {
      assert.ok(
        res.body.error.details.some((d: { field?: string }) => d.field === field),
        JSON.stringify(res.body),
      );
    }
  }
  const after = await a("GET", "/api/v1/notification-channels");
  assert.deepEqual(
    after.body.data.map((c: Record<string, unknown>) => [c.name, c.chat_id, c.events, c.enabled]),
    [["my phone", "@desk_alerts", null, true], ["desk", null, null, false]],
  );

  for (
    const [call, id] of [
      [as(bob.userId), telegram.body.id],
      [a, "not-a-uuid"],
      [a, "0190c3c5-0000-7000-8000-000000000000"],
    ] as const
  ) {
    const res = await call("PATCH", path(id), { enabled: false });
    assert.equal(res.status, 404, id);
    assert.equal(res.body.error.code, "NOT_FOUND");
  }
  assert.equal((await getSealedChannel(db, alice.userId, telegram.body.id))?.enabled, true);

  // A new secret replaces the old one in place (a revoked bot token, a re-created Discord
  // webhook): sealed, never answered, and audited as changed without its value.
  const NEW_TOKEN = "654321:BBH-rotated-route-test-token";
  const NEW_WEBHOOK = "https://discord.com/api/webhooks/434343/rotated-discord-secret";
  const rotated = await a("PATCH", path(telegram.body.id), { bot_token: NEW_TOKEN });
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  assert.deepEqual(Object.keys(rotated.body).sort(), [
    "chat_id",
    "created_at",
    "enabled",
    "events",
    "id",
    "kind",
    "name",
  ]);
  assert.equal(rotated.body.chat_id, "@desk_alerts", "the chat stays");
  const rotatedSealed = await getSealedChannel(db, alice.userId, telegram.body.id);
  assert.equal(await test.deps.keyring.decrypt(rotatedSealed!.secret), NEW_TOKEN);
  const moved = await a("PATCH", path(discord.body.id), {
    webhook_url: NEW_WEBHOOK,
    name: "desk 2",
  });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  assert.equal(moved.body.name, "desk 2");
  const movedSealed = await getSealedChannel(db, alice.userId, discord.body.id);
  assert.equal(await test.deps.keyring.decrypt(movedSealed!.secret), NEW_WEBHOOK);

  const audited = await db.query<{ action: string; data: Record<string, unknown> }>(
    `SELECT action, data FROM audit_log WHERE action = 'notification_channel.updated' ORDER BY id`,
  );
  assert.deepEqual(audited.map((r) => r.data), [
    { name: "my phone", events: ["signal.rejected"], chat_id: "@desk_alerts" },
    { enabled: false },
    { events: null },
    { secret_changed: true },
    { name: "desk 2", secret_changed: true },
  ]);
  const everything = JSON.stringify(await db.query("SELECT * FROM audit_log"));
  for (const secret of [NEW_TOKEN, NEW_WEBHOOK, "rotated"]) {
    assert.ok(!everything.includes(secret), "no secret in the audit log");
  }
});
