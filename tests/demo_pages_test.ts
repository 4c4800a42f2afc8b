/**
 * Every dashboard page over the demo data (`deno task seed`), in Chromium: each page — and a
 * signal's and an order's detail page — answers 200, hydrates, fits a phone's width, and raises no
 * console error, page error or CSP violation. The screenshots (desktop and phone) are the
 * artifacts a reviewer looks at: `test-artifacts/screenshots/demo-*.png`.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { NAV } from "../components/Layout.tsx";
import { runTask, startServer } from "./_process.ts";
import { tempDir } from "./_pipeline.ts";
import { launchBrowser, ProblemCollector, screenshot, VIEWPORTS } from "./_browser.ts";

const EMAIL = "demo@trendedge.local";
const PASSWORD = "demo-password-1234";

async function visit(page: Page, url: string): Promise<void> {
  const res = await page.goto(url);
  assert.equal(res?.status(), 200, `${url} answers 200`);
  await page.waitForSelector("html[data-hydrated]");
}

Deno.test("every dashboard page renders the demo data on a desktop and a phone", async () => {
  await using data = await tempDir("trendedge-demo-");
  const seeded = await runTask(
    { DATA_DIR: data.path, PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "" },
    "seed",
    "--days",
    "10",
  );
  assert.equal(seeded.code, 0, seeded.stdout + seeded.stderr);
  await using server = await startServer({ DATA_DIR: data.path });
  const base = server.url.replace(/\/$/, "");
  await using launched = await launchBrowser();
  const problems = new ProblemCollector();
  const context = await launched.browser.newContext({
    viewport: VIEWPORTS.desktop,
    timezoneId: "America/New_York",
  });
  await problems.attach(context);
  const page = await context.newPage();

  await page.goto(`${base}/login`);
  await page.waitForSelector("html[data-hydrated]");
  await page.fill("input[name=email]", EMAIL);
  await page.fill("input[name=password]", PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/`);

  // The demo user is the first user, so an admin: every NAV page is theirs.
  await visit(page, `${base}/signals`);
  const signalHref = await page.getAttribute("table a[href^='/signals/']", "href");
  await visit(page, `${base}/orders?view=orders`);
  const orderHref = await page.getAttribute("table a[href^='/orders/']", "href");
  assert.ok(signalHref && orderHref, "the demo data has signals and orders to open");
  const paths = [
    ...NAV.map((item) => ({ key: item.key, path: item.href })),
    { key: "signal", path: signalHref },
    { key: "orders-trades", path: "/orders?view=trades" },
    { key: "order", path: orderHref },
  ];
  for (const [viewport, size] of Object.entries(VIEWPORTS)) {
    await page.setViewportSize(size);
    for (const { key, path } of paths) {
      await visit(page, `${base}${path}`);
      const width = await page.evaluate("document.documentElement.scrollWidth") as number;
      assert.ok(width <= size.width, `${path} fits ${viewport} (${width} > ${size.width} px)`);
      await screenshot(page, `demo-${viewport}-${key}`);
    }
  }
  // The seeded data shows: rows on the overview, a candlestick canvas on the chart.
  await visit(page, `${base}/`);
  assert.ok(await page.locator("tr[data-signal-id]").count() > 0, "the overview lists signals");
  await visit(page, `${base}/chart`);
  assert.ok(await page.locator("canvas").count() > 0, "the chart draws");
  // Times are shown in the browser's zone, which the boot script reported.
  assert.equal(await page.getAttribute("html", "data-tz"), "America/New_York");
  assert.equal(problems.problems.length, 0, problems.report());
  await context.close();
});
