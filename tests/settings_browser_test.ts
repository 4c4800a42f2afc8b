/**
 * The settings page in real Chromium against a real server process: add an Alpaca account with
 * its keys, change a risk limit, add a Discord channel (pointed at the local fake) and send it a
 * test, watch symbols, sign another device out — each checked through the API afterwards. Screenshots of the page at
 * desktop and phone widths land in test-artifacts/.
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "./_browser.ts";
import { startServer } from "./_process.ts";
import { startFakeDiscord } from "./fakes/discord.ts";

const EMAIL = "owner@example.com";
const PASSWORD = "correct-horse-battery";
const KEY_ID = "PKBROWSERKEY01";
const SECRET = "browserSecretNeverShown123";
const DISCORD_TOKEN = "browserDiscordToken_abc";
const NEW_DISCORD_TOKEN = "rotated-discord-token-from-the-edit-form";
const ARTIFACTS = new URL("../test-artifacts/", import.meta.url);

async function apiGet<T>(page: Page, url: string): Promise<T> {
  const res = await page.request.get(url);
  assert.equal(res.status(), 200, await res.text());
  return await res.json() as T;
}

Deno.test({
  name: "settings page drives accounts, risk limits, a Discord test and the watchlist in Chromium",
  // playwright-core keeps its own pipes and timers to the browser process.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "trendedge-settings-" });
    await using discord = startFakeDiscord();
    await using server = await startServer({
      DATA_DIR: dataDir,
      DISCORD_API_URL: discord.url,
    });
    const base = server.url.replace(/\/$/, "");
    let browser: Browser | undefined;
    try {
      ({ browser } = await launchBrowser());
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("dialog", (d) => d.accept());

      // First visit: the one-time setup makes the admin.
      await page.goto(`${base}/`);
      await page.waitForSelector("html[data-hydrated]");
      await page.fill("input[name=email]", EMAIL);
      await page.fill("input[name=password]", PASSWORD);
      await page.fill("input[name=confirm]", PASSWORD);
      await page.click("button[type=submit]");
      await page.waitForURL(`${base}/`);
      await page.goto(`${base}/settings`);
      await page.waitForSelector("html[data-hydrated]");

      // An Alpaca account with its keys; the live warning shows only while "live" is ticked.
      const create = "form[data-testid=create-account]";
      await page.fill(`${create} input[name=alias]`, "alpaca-main");
      await page.fill(`${create} input[name='credentials.key_id']`, KEY_ID);
      await page.fill(`${create} input[name='credentials.secret_key']`, SECRET);
      await page.check(`${create} input[name=live]`);
      await page.waitForSelector("[data-testid=live-warning]");
      await page.uncheck(`${create} input[name=live]`);
      await page.click(`${create} button[type=submit]`);
      await page.waitForSelector("tr[data-account-alias=alpaca-main]");
      const account = await apiGet<{ broker: string; live: boolean; has_credentials: boolean }>(
        page,
        `${base}/api/v1/accounts/alpaca-main`,
      );
      assert.equal(account.broker, "alpaca");
      assert.equal(account.live, false);
      assert.equal(account.has_credentials, true);

      // A risk limit; a bad value is answered next to its field first.
      await page.click("tr[data-account-alias=alpaca-main] button:has-text('Edit')");
      const settings = "form[data-testid=account-settings]";
      await page.fill(`${settings} input[name='risk.max_order_quantity']`, "3");
      await page.fill(`${settings} input[name='risk.allowed_symbols']`, "AAPL, MSFT");
      await page.check(`${settings} label:has-text('Trade only in a session') input`);
      await page.fill(`${settings} input[name='risk.trading_session.timezone']`, "Mars/Base");
      await page.click(`${settings} button[type=submit]`);
      const fieldError = await page.waitForSelector(`${settings} .field-error`);
      assert.match(await fieldError.textContent() ?? "", /Unknown time zone "Mars\/Base"/);
      assert.match(await page.textContent(`${settings} [role=alert]`) ?? "", /time zone/);
      await page.uncheck(`${settings} label:has-text('Trade only in a session') input`);
      await page.click(`${settings} button[type=submit]`);
      await page.waitForSelector(`${settings} [role=status]:has-text('saved')`);
      const edited = await apiGet<{ risk: Record<string, unknown> }>(
        page,
        `${base}/api/v1/accounts/alpaca-main`,
      );
      assert.deepEqual(edited.risk, { max_order_quantity: 3, allowed_symbols: ["AAPL", "MSFT"] });

      // A Discord channel pointed at the fake, and its test message.
      const channel = "form[data-testid=create-channel]";
      await page.selectOption(`${channel} select[name=kind]`, "discord");
      await page.fill(`${channel} input[name=name]`, "desk");
      await page.fill(
        `${channel} input[name=webhook_url]`,
        `https://discord.com/api/webhooks/4242/${DISCORD_TOKEN}`,
      );
      await page.click(`${channel} button[type=submit]`);
      const row = await page.waitForSelector("[data-testid=channels] tr:has-text('desk')");
      await (await row.$("button:has-text('Send test')"))!.click();
      await page.waitForSelector("[data-testid=test-result]:has-text('Test sent.')");
      const [sent] = await discord.requests.waitForCount((r) => r.webhookId === "4242", 1, "test");
      assert.equal(sent!.token, DISCORD_TOKEN);
      const channels = await apiGet<{ data: Array<{ name: string; kind: string }> }>(
        page,
        `${base}/api/v1/notification-channels`,
      );
      assert.deepEqual(channels.data.map((c) => [c.name, c.kind]), [["desk", "discord"]]);

      // Edit it: rename, only rejected signals, a new webhook URL; then switch it off.
      await (await row.$("button:has-text('Edit')"))!.click();
      const edit = "form[data-testid=edit-channel]";
      await page.fill(`${edit} input[name=name]`, "desk pc");
      await page.fill(
        `${edit} input[name=webhook_url]`,
        `https://discord.com/api/webhooks/4343/${NEW_DISCORD_TOKEN}`,
      );
      await page.uncheck(`${edit} input[name=all]`);
      for (const box of await page.$$(`${edit} input[name=events]`)) {
        if (await box.getAttribute("value") !== "signal.rejected") await box.uncheck();
      }
      await page.click(`${edit} button[type=submit]`);
      await page.waitForSelector("[role=status]:has-text('Channel \"desk pc\" saved.')");
      const renamed = page.locator("[data-testid=channels] tr:has-text('desk pc')");
      assert.equal(await renamed.locator("td.events").textContent(), "signal.rejected");
      // The test message now goes to the new webhook.
      await renamed.locator("button:has-text('Send test')").click();
      const [moved] = await discord.requests.waitForCount((r) => r.webhookId === "4343", 1, "test");
      assert.equal(moved!.token, NEW_DISCORD_TOKEN);
      await renamed.locator("button:has-text('Disable')").click();
      await renamed.locator(".badge:has-text('disabled')").waitFor();
      const edited2 = await apiGet<{ data: Array<Record<string, unknown>> }>(
        page,
        `${base}/api/v1/notification-channels`,
      );
      assert.deepEqual(
        edited2.data.map((c) => [c.name, c.events, c.enabled]),
        [["desk pc", ["signal.rejected"], false]],
      );

      // Watch two symbols on two timeframes (1d is ticked by default).
      const watch = "form[data-testid=add-watch]";
      await page.fill(`${watch} input[name=symbols]`, "MSFT, NVDA");
      await page.check(`${watch} input[name=timeframe][value='4h']`);
      await page.click(`${watch} button[type=submit]`);
      await page.waitForSelector("[data-testid=watchlist] li[data-symbol=NVDA]");
      const watched = await apiGet<{ data: Array<{ symbol: string; timeframe: string }> }>(
        page,
        `${base}/api/v1/watchlists`,
      );
      assert.deepEqual(
        watched.data.map((w) => `${w.symbol}/${w.timeframe}`).sort(),
        ["MSFT/1d", "MSFT/4h", "NVDA/1d", "NVDA/4h"],
      );

      // Deleting the paper account is refused; the page shows the server's reason.
      await page.click("tr[data-account-alias=paper] button:has-text('Delete')");
      await page.waitForSelector(
        "#accounts > [role=alert]:has-text('every user keeps the paper account')",
      );

      // Another device signs in; this page signs it out.
      const other = await fetch(`${base}/api/v1/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "User-Agent": "other-device/2.0" },
        body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
      });
      assert.equal(other.status, 200, await other.clone().text());
      await other.body?.cancel();

      // The secrets went in and never come back out.
      await page.reload();
      await page.waitForSelector("html[data-hydrated]");
      const html = await page.content();
      for (const secret of [KEY_ID, SECRET, DISCORD_TOKEN, NEW_DISCORD_TOKEN]) {
        assert.ok(!html.includes(secret), "a saved secret is not in the page");
      }

      await page.click("[data-testid=sessions] tr:has-text('other-device/2.0') button");
      await page.waitForSelector("#security [role=status]:has-text('Signed out')");
      const sessions = await apiGet<{ data: Array<{ user_agent: string | null }> }>(
        page,
        `${base}/api/v1/sessions`,
      );
      assert.equal(sessions.data.some((x) => x.user_agent === "other-device/2.0"), false);

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({
        path: new URL("settings-1280.png", ARTIFACTS).pathname,
        fullPage: true,
      });
      await page.setViewportSize({ width: 390, height: 844 });
      const overflow = await page.evaluate<number>("document.documentElement.scrollWidth");
      assert.ok(overflow <= 390, `the phone layout fits 390 px (is ${overflow})`);
      await page.screenshot({
        path: new URL("settings-390.png", ARTIFACTS).pathname,
        fullPage: true,
      });
      assert.deepEqual(errors, [], "no script errors");
    } finally {
      await browser?.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
