/**
 * The dashboard in a real browser (headless Chromium through playwright-core) against a real
 * server on PostgreSQL: a fill updates the overview's positions and account card without a
 * reload, and the chart draws the stored bars, a trendline and the fill's marker on a canvas. Skipped where
 * Chromium is not installed. `SCREENSHOTS=dir` keeps desktop and phone screenshots.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { launchBrowser } from "./_browser.ts";
import { insertTrendline } from "../db/trendlines.ts";
import { uuidv7 } from "../lib/ids.ts";
import { ENCRYPTION_KEY, freshDatabase, JWT_SECRET, tempDir } from "./_pipeline.ts";
import { startServer } from "./_process.ts";

const HOUR = 3_600_000;
const shots = Deno.env.get("SCREENSHOTS");

/** The little of the browser's globals the page functions use (this file is type-checked as Deno). */
interface Browser {
  document: {
    querySelector(selector: string): {
      textContent: string | null;
      getBoundingClientRect(): { width: number };
      getAttribute(name: string): string | null;
    } | null;
  };
}

async function shoot(page: Page, name: string) {
  if (!shots) return;
  await page.screenshot({ path: `${shots}/${name}-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}/${name}-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
}

Deno.test({
  name: "dashboard in Chromium: a fill updates the positions live, and the chart draws the bars",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using database = await freshDatabase();
    await using dataDir = await tempDir("trendedge-browser-");
    await using server = await startServer({
      DATABASE_URL: database.url,
      DATA_DIR: dataDir.path,
      JWT_SECRET,
      ENCRYPTION_KEY,
      LOG_LEVEL: "info",
      WEBHOOK_RATE_LIMIT_PER_MINUTE: "1000",
    });
    const base = server.url;
    const { browser } = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));

      // First visit: set up the admin, then create a webhook key.
      await page.goto(base + "/");
      await page.waitForSelector("html[data-hydrated]");
      await page.fill("input[name=email]", "admin@example.com");
      await page.fill("input[name=password]", "correct-horse-battery");
      await page.fill("input[name=confirm]", "correct-horse-battery");
      await page.click("button[type=submit]");
      await page.waitForURL(base + "/");
      await page.goto(base + "/settings");
      await page.waitForSelector("html[data-hydrated]");
      await page.fill("form[data-testid=create-key] input[name=name]", "TV");
      await page.click("form[data-testid=create-key] button[type=submit]");
      const key = (await page.textContent("[data-testid=new-key-value]"))!.trim();

      // 60 hourly bars up to the current hour, through the bars webhook.
      const now = Date.now();
      const last = now - (now % HOUR);
      for (let i = 59; i >= 0; i--) {
        const open = 180 + Math.sin(i / 5) * 5;
        const close = open + (i % 3 === 0 ? -1 : 1);
        const res = await fetch(base + "/api/v1/webhooks/bars", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            key,
            ticker: "NASDAQ:AAPL",
            interval: "60",
            open,
            high: Math.max(open, close) + 0.5,
            low: Math.min(open, close) - 0.5,
            close,
            volume: 1000,
            time: last - i * HOUR,
          }),
        });
        assert.equal(res.status, 200, await res.text());
      }

      // A support line under the lows of bars 50 and 20 hours ago, as the scanner would store it.
      const [admin] = await database.db.query<{ id: string }>(
        "SELECT id FROM users WHERE email = 'admin@example.com'",
      );
      const t1 = new Date(last - 50 * HOUR);
      const t2 = new Date(last - 20 * HOUR);
      await insertTrendline(
        database.db,
        { id: uuidv7(), userId: admin!.id, symbol: "AAPL", timeframe: "1h" },
        {
          kind: "support",
          t1,
          p1: 172,
          t2,
          p2: 175,
          slopePerHour: 0.1,
          touches: 2,
          touchedAt: [t1, t2],
          score: 1,
        },
        { at: new Date(), lastBarTs: new Date(last) },
      );

      // A fill shows in the positions table and the account card, without a reload.
      await page.goto(base + "/");
      await page.waitForSelector("[data-live-status=live]");
      await page.evaluate(() => (globalThis as unknown as { stayed: boolean }).stayed = true);
      assert.equal(await page.textContent("[data-account=paper] [data-open-positions]"), "0");
      const res = await fetch(base + "/api/v1/webhooks/tradingview", {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: JSON.stringify({
          key,
          ticker: "NASDAQ:AAPL",
          action: "buy",
          quantity: 2,
          price: 181,
        }),
      });
      assert.equal(res.status, 202, await res.text());
      await page.waitForSelector('tr[data-position="paper:AAPL"][data-quantity="2"]', {
        timeout: 5_000,
      });
      await page.waitForFunction(
        () =>
          (globalThis as unknown as Browser).document
            .querySelector("[data-account=paper] [data-open-positions]")?.textContent === "1",
        undefined,
        { timeout: 5_000 },
      );
      assert.equal(
        await page.evaluate(() => (globalThis as unknown as { stayed?: boolean }).stayed),
        true,
        "the page was not reloaded",
      );
      await shoot(page, "overview");

      // The chart: candles on a canvas, the fill as a marker, the summary under it.
      await page.goto(base + "/chart?symbol=AAPL&timeframe=1h");
      await page.waitForSelector('[data-chart="AAPL:1h"][data-rendered="60"] canvas');
      // Some pixel of a canvas has the up or down candle colour.
      const painted = await page.evaluate(`[...document.querySelectorAll("[data-chart] canvas")]
        .some((canvas) => {
          const ctx = canvas.getContext("2d");
          if (!ctx || canvas.width === 0) return false;
          const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
          for (let i = 0; i < data.length; i += 4) {
            if (data[i] === 0x3f && data[i + 1] === 0xb9 && data[i + 2] === 0x50) return true;
            if (data[i] === 0xf8 && data[i + 1] === 0x51 && data[i + 2] === 0x49) return true;
          }
          return false;
        })`);
      // And some pixel has the support line's colour.
      const lined = await page.evaluate(`[...document.querySelectorAll("[data-chart] canvas")]
        .some((canvas) => {
          const ctx = canvas.getContext("2d");
          if (!ctx || canvas.width === 0) return false;
          const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
          for (let i = 0; i < data.length; i += 4) {
            if (data[i] === 0x4c && data[i + 1] === 0x9a && data[i + 2] === 0xff) return true;
          }
          return false;
        })`);
      assert.ok(lined, "the trendline is drawn");
      assert.ok(painted, "candles are painted");
      assert.match(
        (await page.textContent("[data-chart-summary]"))!,
        /60 bars · 1 active trendline · 1 fill\b/,
      );
      // Resizing the box resizes the chart.
      const width = `document.querySelector("[data-chart] canvas").getBoundingClientRect().width`;
      const before = await page.evaluate(width);
      await page.setViewportSize({ width: 700, height: 900 });
      await page.waitForFunction(
        (w) =>
          (globalThis as unknown as Browser).document.querySelector("[data-chart] canvas")!
            .getBoundingClientRect().width < w,
        before as number,
      );
      await page.setViewportSize({ width: 1280, height: 900 });
      await shoot(page, "chart");

      await page.goto(base + "/system");
      await page.waitForSelector("[data-probe=database][data-status=ok]");
      await shoot(page, "system");
      // The figures refresh in place (every 2 s here): the uptime moves on without a reload.
      await page.goto(base + "/system?refresh=2");
      const uptime = () => page.getAttribute("[data-uptime]", "data-uptime").then(Number);
      const uptimeAbove = (was: number) =>
        page.waitForFunction(
          (was) =>
            Number(
              (globalThis as unknown as Browser).document.querySelector("[data-uptime]")!
                .getAttribute("data-uptime"),
            ) > was,
          was,
          { timeout: 8_000 },
        );
      const first = await uptime();
      await page.evaluate(() => {
        (globalThis as unknown as { marker: number }).marker = 1;
      });
      await uptimeAbove(first);
      assert.equal(
        await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker),
        1,
        "refreshed without reloading the page",
      );
      await page.uncheck(".page-refresh input[type=checkbox]");
      const paused = await uptime();
      await page.waitForTimeout(3_000);
      assert.equal(await uptime(), paused, "paused: no more refreshes");
      // A server slower than the period gets one refresh at a time, never a pile of them: with
      // each answer held 4.5 s and a 2 s period, one fetch starts in 7 s (overlapping ones would
      // start three).
      const started: number[] = [];
      const systemPage = (url: URL) => url.pathname === "/system";
      await page.route(systemPage, async (route) => {
        started.push(Date.now());
        await new Promise((resolve) => setTimeout(resolve, 4_500));
        await route.continue();
      });
      const resumed = Date.now();
      await page.check(".page-refresh input[type=checkbox]");
      await page.waitForTimeout(7_000);
      assert.equal(started.filter((at) => at - resumed < 7_000).length, 1, "one refresh at a time");
      await uptimeAbove(paused);
      await page.unroute(systemPage);
      // A server that never answers: the fetches are given up after 10 s, the page and its
      // health card say so and keep their figures, and the next answers clear the messages.
      const hung = (url: URL) => url.pathname === "/system" || url.pathname === "/health/ready";
      await page.route(hung, async (route) => {
        await new Promise((resolve) => setTimeout(resolve, 15_000));
        await route.continue().catch(() => {}); // aborted by the page meanwhile
      });
      const problem = ".page-refresh [role=alert]";
      await page.waitForSelector(`${problem}:has-text('no answer within 10 s')`, {
        timeout: 16_000,
      });
      assert.match(await page.textContent(problem) ?? "", /these figures are old/);
      const down = "[aria-labelledby=health] [role=alert]:has-text('The server does not answer')";
      await page.waitForSelector(down, { timeout: 12_000 });
      await page.unroute(hung);
      await page.waitForSelector(problem, { state: "detached", timeout: 8_000 });
      await page.waitForSelector(down, { state: "detached", timeout: 15_000 });
      await page.uncheck(".page-refresh input[type=checkbox]");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },
});
