/**
 * The overview's first contentful paint in Chromium beside a static page of the same size from
 * the same server process, measured in the same run.
 *
 * The server is the real runtime (`start()` from main.ts, production mode, PGlite) in its own
 * process (`bench/_server.ts app --static-page`), with one user, a webhook key and SIGNALS paper
 * signals, so the overview has its accounts, positions and a full table of latest signals. The
 * baseline is a plain HTML page of exactly the overview's byte size with no script, linking the
 * same stylesheet (render-blocking in both, so the comparison is markup + scripts, not CSS),
 * which the bench script mounts on `Runtime.app` — the product has no bench route.
 *
 * Each load is cold: a fresh browser context (empty cache), the two pages alternating which goes
 * first; ROUNDS loads of each after one warm-up load of each (not counted). FCP is the browser's
 * `first-contentful-paint` entry; TTFB is the navigation's `responseStart`; "hydrated" is when the
 * boot script marked `<html data-hydrated>` (every island running). Target: overview FCP ≤ 2×
 * static FCP (medians).
 *
 *     deno run -A bench/paint.ts
 */
import type { Browser, BrowserContext } from "playwright-core";
import { median, ms, ratio, writeLine, writeTable } from "./_report.ts";
import { spawnServer } from "./_spawn.ts";
import { STATIC_PAGE_PATH } from "./_static_page.ts";
import { launchBrowser, VIEWPORTS } from "../tests/_browser.ts";

const ROUNDS = 15;
const SIGNALS = 50;
const TARGET_RATIO = 2;
const EMAIL = "bench@example.com";
const PASSWORD = "bench-password-0123456789";
const WEBHOOK_PATH = "/api/v1/webhooks/tradingview";

/** One page load's timings, ms since navigation start. */
interface Load {
  fcp: number;
  ttfb: number;
  load: number;
  hydrated: number;
}

/**
 * Records when the boot script marks `<html>` hydrated (installed before any page script, when
 * there is no `<html>` yet: it watches the document; island roots get the attribute too).
 */
const HYDRATION_PROBE = `
  new MutationObserver((records, observer) => {
    if (records.some((r) => r.target === document.documentElement)) {
      globalThis.__teHydratedAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-hydrated"] });
`;

/** Reads the load's timings once FCP is known. */
const READ_TIMINGS = `new Promise((resolve) => {
  const done = (fcp) => {
    const nav = performance.getEntriesByType("navigation")[0];
    resolve({
      fcp,
      ttfb: nav ? nav.responseStart : NaN,
      load: nav ? nav.loadEventEnd : NaN,
      hydrated: globalThis.__teHydratedAt ?? NaN,
    });
  };
  const entry = performance.getEntriesByName("first-contentful-paint")[0];
  if (entry) return done(entry.startTime);
  new PerformanceObserver((list, observer) => {
    const fcp = list.getEntries().find((e) => e.name === "first-contentful-paint");
    if (fcp) {
      observer.disconnect();
      done(fcp.startTime);
    }
  }).observe({ type: "paint", buffered: true });
  setTimeout(() => done(NaN), 5000);
})`;

function progress(text: string) {
  Deno.stderr.writeSync(new TextEncoder().encode(`  · ${text}\n`));
}

async function call(
  url: string,
  init: { method?: string; body?: unknown; token?: string; text?: boolean } = {},
): Promise<{ status: number; body: Record<string, unknown>; res: Response }> {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: {
      "content-type": init.text ? "text/plain" : "application/json",
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status: res.status, body, res };
}

function expect(
  status: number,
  answer: { status: number; body: Record<string, unknown> },
  what: string,
) {
  if (answer.status !== status) {
    // The error only: a success body may hold a token.
    const error = JSON.stringify(answer.body.error ?? answer.body.text ?? "").slice(0, 500);
    throw new Error(`Cannot ${what}: ${answer.status} ${error}`);
  }
}

/** A user, a key and SIGNALS filled signals; returns the session cookies of a browser login. */
async function seed(base: string): Promise<Array<{ name: string; value: string }>> {
  const setup = await call(`${base}/api/v1/auth/setup`, {
    body: { email: EMAIL, password: PASSWORD, mode: "token" },
  });
  expect(201, setup, "set up the first user");
  const token = String(setup.body.access_token);
  const key = await call(`${base}/api/v1/webhook-keys`, { body: { name: "bench" }, token });
  expect(201, key, "create a webhook key");
  for (let i = 0; i < SIGNALS; i++) {
    const sent = await call(`${base}${WEBHOOK_PATH}`, {
      text: true,
      body: {
        key: key.body.key,
        ticker: ["NASDAQ:AAPL", "NASDAQ:MSFT", "NYSE:KO"][i % 3],
        action: i % 2 === 0 ? "buy" : "sell",
        quantity: 1 + (i % 4),
        price: (100 + i / 4).toFixed(2),
        id: `paint-${i}`,
      },
    });
    expect(202, sent, "post a webhook");
  }
  const login = await call(`${base}/api/v1/auth/login`, {
    body: { email: EMAIL, password: PASSWORD, mode: "cookie" },
  });
  expect(200, login, "log in");
  // The cookies are `Secure` (production); a browser on http://127.0.0.1 still sends them, and
  // they are handed to each fresh context directly.
  return login.res.headers.getSetCookie().map((line) => {
    const [pair] = line.split(";");
    const eq = pair!.indexOf("=");
    return { name: pair!.slice(0, eq).trim(), value: pair!.slice(eq + 1).trim() };
  }).filter((c) => c.value !== "");
}

/** Waits until the overview lists no signal still on its way (every one filled or refused). */
async function waitSettled(url: string, cookie: string): Promise<string> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const res = await fetch(url, { headers: { cookie } });
    const html = await res.text();
    if (res.status !== 200) throw new Error(`Cannot read the overview: ${res.status}`);
    const pending = /data-status="(accepted|executing|placed)"/.test(html);
    if (!pending && html.includes("data-signal-id=")) return html;
    if (performance.now() > deadline) throw new Error("The seeded signals did not settle in 30 s");
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function coldLoad(
  browser: Browser,
  url: string,
  cookies: Array<{ name: string; value: string }>,
  hydrates: boolean,
): Promise<Load> {
  const context: BrowserContext = await browser.newContext({ viewport: VIEWPORTS.desktop });
  try {
    if (cookies.length > 0) {
      await context.addCookies(cookies.map((c) => ({ ...c, url: new URL(url).origin })));
    }
    await context.addInitScript({ content: HYDRATION_PROBE });
    const page = await context.newPage();
    const res = await page.goto(url, { waitUntil: "load" });
    if (res?.status() !== 200) throw new Error(`${url} answered ${res?.status()}`);
    if (page.url() !== url) throw new Error(`${url} went to ${page.url()} (signed out?)`);
    if (hydrates) await page.waitForSelector("html[data-hydrated]", { timeout: 10_000 });
    return await page.evaluate(READ_TIMINGS) as Load;
  } finally {
    await context.close();
  }
}

/** Runs the bench and prints its table. */
export async function bench(): Promise<void> {
  await using server = await spawnServer("app", {
    staticPage: true,
    appConfig: { WEBHOOK_RATE_LIMIT_PER_MINUTE: "1000000" },
  });
  const base = server.url.replace(/\/$/, "");
  progress(`seeding ${SIGNALS} signals`);
  const cookies = await seed(base);
  const cookieHeader = cookies.map((c) => `${c.name}=${c.value}`).join("; ");
  const overviewUrl = `${base}/`;
  const html = await waitSettled(overviewUrl, cookieHeader);
  const bytes = new TextEncoder().encode(html).length;
  const css = /<link rel="stylesheet" href="([^"]+)"/.exec(html)?.[1];
  if (!css) throw new Error("Cannot find the overview's stylesheet link");
  const staticUrl = `${base}${STATIC_PAGE_PATH}?bytes=${bytes}&css=${encodeURIComponent(css)}`;
  const staticBytes = (await (await fetch(staticUrl)).arrayBuffer()).byteLength;
  const rows = (html.match(/data-signal-id=/g) ?? []).length;

  await using launched = await launchBrowser();
  const { browser } = launched;
  const pages = [
    { name: "overview (signed in)", url: overviewUrl, cookies, hydrates: true },
    { name: "static page, same size", url: staticUrl, cookies: [], hydrates: false },
  ];
  progress("warming up");
  for (const p of pages) await coldLoad(browser, p.url, p.cookies, p.hydrates);
  const loads: Load[][] = pages.map(() => []);
  progress(`${ROUNDS} cold loads of each, alternating`);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      const p = pages[i]!;
      loads[i]!.push(await coldLoad(browser, p.url, p.cookies, p.hydrates));
    }
  }

  const col = (i: number, f: (l: Load) => number) => median(loads[i]!.map(f));
  writeLine(
    `  overview: ${bytes.toLocaleString("en-US")} bytes of HTML, ${rows} signal rows; static ` +
      `page: ${staticBytes.toLocaleString("en-US")} bytes, no script, same stylesheet (${css})`,
  );
  writeLine(`  medians of ${ROUNDS} cold loads each (fresh context, desktop 1280×800), ms:`);
  writeTable(
    ["page", "TTFB", "FCP", "FCP min–max", "load", "hydrated", "FCP ratio"],
    pages.map((p, i) => {
      const fcps = loads[i]!.map((l) => l.fcp);
      return [
        p.name,
        ms(col(i, (l) => l.ttfb)),
        ms(col(i, (l) => l.fcp)),
        `${ms(Math.min(...fcps))}–${ms(Math.max(...fcps))}`,
        ms(col(i, (l) => l.load)),
        i === 0 ? ms(col(i, (l) => l.hydrated)) : "–",
        ratio(col(i, (l) => l.fcp) / col(1, (l) => l.fcp)),
      ];
    }),
  );
  const missing = loads.flat().filter((l) => !Number.isFinite(l.fcp)).length;
  if (missing > 0) writeLine(`  !! ${missing} loads reported no first-contentful-paint`);
  const r = col(0, (l) => l.fcp) / col(1, (l) => l.fcp);
  writeLine(
    `${r <= TARGET_RATIO && missing === 0 ? "PASS" : "FAIL"} overview FCP is ${
      ratio(r)
    } of the static page's (target ≤ ${ratio(TARGET_RATIO)})`,
  );
}

if (import.meta.main) {
  const { runStandalone } = await import("./_spawn.ts");
  await runStandalone(bench);
}
