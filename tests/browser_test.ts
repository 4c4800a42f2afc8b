/**
 * The dashboard end to end, in headless Chromium against the real server process (embedded
 * PGlite in a temp DATA_DIR): first-run setup, sign out and in, a webhook key, a live signal
 * row without a reload, the kill switch refusing the next signal — with no console error, page
 * error or CSP violation anywhere — and a screenshot of each step and of every NAV page on a
 * desktop and a phone (`test-artifacts/screenshots/`).
 */
import assert from "node:assert/strict";
import type { BrowserContext, Page } from "playwright-core";
import { NAV } from "../components/Layout.tsx";
import { startServer } from "./_process.ts";
import { tempDir, WEBHOOK_PATH } from "./_pipeline.ts";
import {
  launchBrowser,
  note,
  ProblemCollector,
  screenshot,
  type ViewportName,
  VIEWPORTS,
  waitReady,
} from "./_browser.ts";

const EMAIL = "admin@example.com";
const PASSWORD = "correct-horse-battery";
/** How soon a signal's row must show its fill on an open overview. */
const LIVE_WITHIN_MS = 1000;

async function hydrated(page: Page) {
  await page.waitForSelector("html[data-hydrated]");
}

async function postWebhook(base: string, body: Record<string, unknown>) {
  const res = await fetch(`${base}${WEBHOOK_PATH}`, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

/** Counts main-frame navigations of `page` (a reload or a link followed would add one). */
function countNavigations(page: Page): { readonly count: number } {
  const counter = { count: 0 };
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) counter.count++;
  });
  return counter;
}

/** Screenshots every NAV page (each must answer 200 and fit the viewport's width). */
async function screenshotNav(context: BrowserContext, base: string, viewport: ViewportName) {
  const page = await context.newPage();
  for (const item of NAV) {
    const res = await page.goto(`${base}${item.href}`);
    assert.equal(res?.status(), 200, `${item.href} loads in the browser`);
    await hydrated(page);
    const width = await page.evaluate("document.documentElement.scrollWidth") as number;
    assert.ok(
      width <= VIEWPORTS[viewport].width,
      `${item.href} fits the ${viewport} width (${width} > ${VIEWPORTS[viewport].width} px)`,
    );
    await screenshot(page, `${viewport}-nav-${item.key}`);
  }
  await page.close();
}

Deno.test("the dashboard in Chromium: setup, login, key, live signal, kill switch, every NAV page", async () => {
  await using data = await tempDir("trendedge-browser-");
  await using server = await startServer({ DATA_DIR: data.path });
  const base = server.url.replace(/\/$/, "");
  await waitReady(base);
  await using launched = await launchBrowser();
  const { browser } = launched;
  const problems = new ProblemCollector();

  const desktop = await browser.newContext({ viewport: VIEWPORTS.desktop });
  await problems.attach(desktop);
  const page = await desktop.newPage();

  // First run: the overview sends a new install to the setup form.
  await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, "/setup", "a fresh install opens /setup");
  await hydrated(page);
  await screenshot(page, "desktop-01-setup");
  await page.fill("input[name=email]", EMAIL);
  await page.fill("input[name=password]", PASSWORD);
  await page.fill("input[name=confirm]", PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/`);
  await hydrated(page);
  await page.waitForSelector("[data-testid=no-signals]");
  await screenshot(page, "desktop-02-overview-new-user");

  // Sign out, then in again.
  await page.click("button:has-text('Sign out')");
  await page.waitForURL(`${base}/login`);
  await hydrated(page);
  await screenshot(page, "desktop-03-login");
  await page.fill("input[name=email]", EMAIL);
  await page.fill("input[name=password]", PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/`);
  await hydrated(page);

  // A webhook key, shown once.
  await page.goto(`${base}/settings`);
  await hydrated(page);
  await page.fill("form[data-testid=create-key] input[name=name]", "TradingView");
  await page.click("form[data-testid=create-key] button[type=submit]");
  const key = (await page.textContent("[data-testid=new-key-value]"))?.trim() ?? "";
  assert.match(key, /^whk_/, "the new key is shown");
  await screenshot(page, "desktop-04-key-created");

  // The overview goes live; a signal's row shows its fill without a reload.
  await page.goto(`${base}/`);
  await hydrated(page);
  await page.waitForSelector("[data-live-status=live]");
  await page.evaluate("globalThis.__teMarker = 'no reload'");
  const navigations = countNavigations(page);
  const sent = performance.now();
  const buy = await postWebhook(base, {
    key,
    ticker: "NASDAQ:AAPL",
    action: "buy",
    quantity: 2,
    price: 190.5,
  });
  assert.equal(buy.status, 202, JSON.stringify(buy.body));
  const buyRow = `tr[data-signal-id="${buy.body.signal_id}"][data-status=filled]`;
  await page.waitForSelector(buyRow, {
    timeout: Math.max(1, LIVE_WITHIN_MS - (performance.now() - sent)),
  });
  const shownMs = performance.now() - sent;
  assert.ok(shownMs <= LIVE_WITHIN_MS, `the filled row showed in ${Math.round(shownMs)} ms`);
  note(`webhook sent → filled row shown: ${Math.round(shownMs)} ms`);
  assert.equal(
    (await page.textContent(`${buyRow} td:last-child`))?.trim(),
    "190.5",
    "the row shows the fill price",
  );
  await screenshot(page, "desktop-05-live-fill");

  // The paper account's kill switch: the next signal is taken (202) and the executor rejects it.
  await page.click("li[data-account=paper] button");
  await page.waitForSelector("li[data-account=paper][data-kill-switch=on]");
  const sell = await postWebhook(base, {
    key,
    ticker: "NASDAQ:AAPL",
    action: "sell",
    quantity: 2,
    price: 191,
  });
  assert.equal(sell.status, 202, `the webhook still takes the alert: ${JSON.stringify(sell.body)}`);
  const sellRow = `tr[data-signal-id="${sell.body.signal_id}"][data-status=rejected]`;
  await page.waitForSelector(sellRow, { timeout: 5_000 });
  assert.match(
    (await page.textContent(`${sellRow} .reason`)) ?? "",
    /kill switch/i,
    "the row says the kill switch refused it",
  );
  await screenshot(page, "desktop-06-kill-switch-rejected");
  assert.equal(await page.evaluate("globalThis.__teMarker"), "no reload", "same document");
  assert.equal(navigations.count, 0, "no navigation while the rows changed");

  // Every NAV page there is, on a desktop and on a phone, signed in.
  await screenshotNav(desktop, base, "desktop");
  const phone = await browser.newContext({
    viewport: VIEWPORTS.phone,
    isMobile: true,
    hasTouch: true,
    storageState: await desktop.storageState(),
  });
  await problems.attach(phone);
  await screenshotNav(phone, base, "phone");
  // The login page on a phone (signed out: a fresh context has no cookies).
  const anonymous = await browser.newContext({ viewport: VIEWPORTS.phone, isMobile: true });
  await problems.attach(anonymous);
  const login = await anonymous.newPage();
  await login.goto(`${base}/login`);
  await hydrated(login);
  await screenshot(login, "phone-login");

  await Promise.all([desktop.close(), phone.close(), anonymous.close()]);
  assert.deepEqual(problems.problems, [], `the pages complained:\n${problems.report()}`);
});

Deno.test("the problem collector catches a console error, an uncaught error and a CSP violation", async () => {
  await using launched = await launchBrowser();
  const context = await launched.browser.newContext();
  const problems = new ProblemCollector([
    { pattern: /expected noise/, why: "shows that a named exception is left out" },
  ]);
  await problems.attach(context);
  // A page served by the browser itself, with a CSP that refuses its inline script.
  await context.route("http://collector.test/**", (route) =>
    route.fulfill({
      contentType: "text/html",
      headers: { "content-security-policy": "default-src 'self'; script-src 'self'" },
      body: "<!doctype html><title>t</title><script>void 0</script>",
    }));
  const page = await context.newPage();
  await page.goto("http://collector.test/");
  await page.evaluate(`console.error("expected noise"); console.error("a real error");
    setTimeout(() => { throw new Error("uncaught"); });`);
  const seen = () => {
    const kinds = new Set(problems.problems.map((p) => p.kind));
    return kinds.has("csp") && kinds.has("pageerror") &&
      problems.problems.some((p) => p.text.includes("a real error"));
  };
  const deadline = performance.now() + 10_000;
  while (!seen() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await context.close();
  const kinds = problems.problems.map((p) => p.kind).sort();
  assert.ok(kinds.includes("csp"), problems.report());
  assert.ok(kinds.includes("pageerror"), problems.report());
  assert.ok(problems.problems.some((p) => p.text.includes("a real error")), problems.report());
  assert.ok(!problems.problems.some((p) => p.text.includes("expected noise")), problems.report());
});
