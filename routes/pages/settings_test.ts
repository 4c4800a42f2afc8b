import assert from "node:assert/strict";
import { createUser } from "../../db/users.ts";
import { createTestApp } from "../../tests/_app.ts";
import { createTestDb } from "../../tests/_db.ts";

const FAST = { iterations: 1000 };
const PASSWORD = "correct horse 1";

// Secrets the users save; none may ever appear in a page.
const BOB_KEY_ID = "PKBOBKEYID0001";
const BOB_SECRET = "bobSecretValueNeverShown42";
const BOB_BOT_TOKEN = "123456:AAbobBotTokenNeverShown_xyz";
const BOB_DISCORD_TOKEN = "bobDiscordTokenNeverShown99";
const ANN_SECRET = "annSecretValueNeverShown77";

type App = ReturnType<typeof createTestApp>["app"];

/** Signs in with a cookie session; returns a caller that sends the cookies and the CSRF token. */
async function signIn(app: App, email: string) {
  const res = await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", "User-Agent": "settings-test/1.0" },
    body: JSON.stringify({ email, password: PASSWORD, mode: "cookie" }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const jar = new Map<string, string>();
  for (const line of res.headers.getSetCookie()) {
    const pair = line.split(";")[0]!;
    const eq = pair.indexOf("=");
    jar.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const csrf = decodeURIComponent(jar.get("te_csrf")!);
  return {
    cookie,
    async call(method: string, path: string, body?: unknown): Promise<Response> {
      const res = await app.request(path, {
        method,
        headers: {
          Cookie: cookie,
          "X-CSRF-Token": csrf,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
      return res;
    },
    async page(path = "/settings"): Promise<{ status: number; html: string }> {
      const res = await app.request(path, { headers: { Cookie: cookie } });
      return { status: res.status, html: await res.text() };
    },
  };
}

Deno.test("settings page shows each section with the user's own data, never a secret", async () => {
  await using t = await createTestDb("postgres");
  await using test = createTestApp({ db: t.db, env: { AUTH_RATE_LIMIT_PER_MINUTE: "1000" } });
  // The first user is the admin.
  await createUser(t.db, { email: "ann@example.com", password: PASSWORD }, FAST);
  await createUser(t.db, { email: "bob@example.com", password: PASSWORD }, FAST);
  const ann = await signIn(test.app, "ann@example.com");
  const bob = await signIn(test.app, "bob@example.com");

  await ann.call("POST", "/api/v1/accounts", {
    alias: "ann-alpaca",
    broker: "alpaca",
    credentials: { key_id: "PKANNKEY", secret_key: ANN_SECRET },
  });
  await ann.call("POST", "/api/v1/notification-channels", {
    kind: "discord",
    name: "ann-discord-channel",
    webhook_url: "https://discord.com/api/webhooks/555/annDiscordToken",
  });
  await ann.call("POST", "/api/v1/watchlists", { symbol: "ANNSYM", timeframe: "4h" });

  await bob.call("POST", "/api/v1/accounts", {
    alias: "bob-alpaca",
    broker: "alpaca",
    credentials: { key_id: BOB_KEY_ID, secret_key: BOB_SECRET },
    risk: { max_order_quantity: 7, allowed_symbols: ["AAPL"] },
    symbol_map: { "NQ1!": "MNQZ6" },
  });
  await bob.call("POST", "/api/v1/notification-channels", {
    kind: "telegram",
    name: "bob-phone",
    bot_token: BOB_BOT_TOKEN,
    chat_id: "4242",
    events: ["trade.closed"],
  });
  await bob.call("POST", "/api/v1/notification-channels", {
    kind: "discord",
    name: "bob-discord",
    webhook_url: `https://discord.com/api/webhooks/777/${BOB_DISCORD_TOKEN}`,
  });
  await bob.call("POST", "/api/v1/watchlists", { symbol: "AAPL", timeframe: "1d" });
  await bob.call("PUT", "/api/v1/scan-settings", { pivot_window: 9 });

  const { status, html } = await bob.page();
  assert.equal(status, 200);
  for (const id of ["keys", "accounts", "kill-switch", "notifications", "watchlists", "security"]) {
    assert.match(html, new RegExp(`id="${id}"`), `section #${id}`);
    assert.ok(html.includes(`href="#${id}"`), `table of contents links #${id}`);
  }
  for (const island of ["AccountsManager", "ChannelsManager", "WatchlistsManager"]) {
    assert.ok(html.includes(`data-island="${island}"`), island);
  }
  assert.ok(html.includes('data-island="SecurityPanel"'));
  // Bob's own data, rendered by the server.
  assert.ok(html.includes('data-account-alias="bob-alpaca"'));
  assert.ok(html.includes('data-account-alias="paper"'));
  assert.ok(html.includes("bob-phone") && html.includes("bob-discord"));
  assert.ok(html.includes('data-symbol="AAPL"'));
  assert.ok(html.includes('"pivot_window":9'), "scan settings in the props");
  assert.ok(html.includes("settings-test/1.0"), "the session's user agent");
  assert.ok(html.includes("this session"));
  // Nobody else's.
  for (const other of ["ann-alpaca", "ann-discord-channel", "ANNSYM", "ann@example.com"]) {
    assert.ok(!html.includes(other), `another user's "${other}" is not on the page`);
  }
  // No secret, in the markup or the island props.
  for (const secret of [BOB_SECRET, BOB_KEY_ID, BOB_BOT_TOKEN, BOB_DISCORD_TOKEN, ANN_SECRET]) {
    assert.ok(!html.includes(secret), "a saved secret is never rendered");
  }
  assert.ok(!html.includes("AAbobBotToken"), "not even part of the bot token");
  assert.ok(!html.includes("/api/webhooks/777"), "nor the Discord webhook path");
  // A trader has no global switch.
  assert.ok(!html.includes("Stop all trading"));
  assert.ok(!html.includes('data-account="*"'));

  const admin = await ann.page();
  assert.equal(admin.status, 200);
  assert.ok(admin.html.includes('data-account="*"'), "an admin sees the global kill switch");
  assert.ok(admin.html.includes("Stop all trading"));
  assert.ok(admin.html.includes('data-account-alias="ann-alpaca"'));
  assert.ok(!admin.html.includes("bob-alpaca") && !admin.html.includes("bob-phone"));
  assert.ok(!admin.html.includes(ANN_SECRET));
});

Deno.test("settings page: a new user sees empty states that say what to do next", async () => {
  await using t = await createTestDb("postgres");
  await using test = createTestApp({ db: t.db, env: { AUTH_RATE_LIMIT_PER_MINUTE: "1000" } });
  await createUser(t.db, { email: "ann@example.com", password: PASSWORD }, FAST);
  await createUser(t.db, { email: "cat@example.com", password: PASSWORD }, FAST);
  const cat = await signIn(test.app, "cat@example.com");
  const { status, html } = await cat.page();
  assert.equal(status, 200);
  assert.ok(html.includes("No channels yet"));
  assert.ok(html.includes("Nothing watched yet"));
  assert.ok(html.includes('data-account-alias="paper"'), "every user has the paper account");
});

Deno.test("settings page without a session redirects to the login", async () => {
  await using t = await createTestDb("postgres");
  await using test = createTestApp({ db: t.db });
  const res = await test.app.request("/settings");
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "/login?next=%2Fsettings");
  const stale = await test.app.request("/settings", { headers: { Cookie: "te_access=nonsense" } });
  assert.equal(stale.status, 303);
});
