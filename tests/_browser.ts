/**
 * Browser tests' shared parts: the system Chromium (never a downloaded one) launched headless,
 * a collector of everything a page complains about (console errors, uncaught errors, CSP
 * violations), screenshots under `test-artifacts/screenshots/`, and waiting for a server.
 *
 * Chromium is Debian's `/usr/bin/chromium` (`CHROMIUM_PATH` overrides it). A machine without it
 * FAILS the browser tests with a message saying what to install: they are part of the suite, not
 * optional. `.ci/run` and the CI workflow install it.
 */
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

/** Where Chromium is. */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** Flags for a headless Chromium in a container: no sandbox, no GPU, no background traffic. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
] as const;

/** The two sizes every page is looked at in. */
export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

/** A viewport name of {@linkcode VIEWPORTS}. */
export type ViewportName = keyof typeof VIEWPORTS;

/** Where screenshots go (git-ignored). */
export const SCREENSHOT_DIR = new URL("../test-artifacts/screenshots/", import.meta.url);

/** A launched Chromium, closed when disposed. */
export interface LaunchedBrowser extends AsyncDisposable {
  browser: Browser;
}

/** Launches the system Chromium headless; throws a clear error when it is not installed. */
export async function launchBrowser(): Promise<LaunchedBrowser> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: the browser tests need it. Install it with ` +
        `"apt-get install chromium" (or set CHROMIUM_PATH to a Chromium binary); ` +
        `these tests never download a browser.`,
    );
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS],
    timeout: 30_000,
  });
  return {
    browser,
    async [Symbol.asyncDispose]() {
      await browser.close().catch(() => {});
    },
  };
}

/** One thing a page complained about. */
export interface PageProblem {
  kind: "console" | "pageerror" | "csp";
  /** The page URL when it happened. */
  url: string;
  text: string;
}

/**
 * Collects the problems of every page of a context: console errors, uncaught exceptions and
 * rejections, and CSP violations (a `securitypolicyviolation` listener installed before any
 * page script runs, reporting through a binding, so a violation on a page that navigates away
 * right after is still counted). Nothing is ignored unless the caller names it in `allow`.
 */
export class ProblemCollector {
  readonly problems: PageProblem[] = [];
  readonly #allow: ReadonlyArray<{ pattern: RegExp; why: string }>;

  /** `allow`: problems expected on purpose, each with the reason it is legitimate. */
  constructor(allow: ReadonlyArray<{ pattern: RegExp; why: string }> = []) {
    this.#allow = allow;
  }

  /** Starts collecting on `context` (every page opened in it afterwards). */
  async attach(context: BrowserContext): Promise<void> {
    await context.exposeBinding("__teReportCsp", ({ page }, text: string) => {
      this.#add({ kind: "csp", url: page.url(), text });
    });
    await context.addInitScript(() => {
      // Typed here: this file is checked without the DOM library when a test runs alone.
      type CspViolation = {
        violatedDirective: string;
        blockedURI: string;
        sourceFile: string;
        lineNumber: number;
      };
      const page = globalThis as unknown as {
        document: {
          addEventListener(type: string, listener: (e: CspViolation) => void): void;
        };
      };
      page.document.addEventListener("securitypolicyviolation", (e) => {
        // deno-lint-ignore no-explicit-any
        (globalThis as any).__teReportCsp(
          `${e.violatedDirective} blocked ${e.blockedURI || "(inline)"} at ${e.sourceFile}:` +
            `${e.lineNumber}`,
        );
      });
    });
    const watch = (page: Page) => {
      page.on("console", (message) => {
        if (message.type() === "error") {
          const at = message.location();
          this.#add({
            kind: "console",
            url: page.url(),
            text: `${message.text()}${at.url ? ` (${at.url}:${at.lineNumber})` : ""}`,
          });
        }
      });
      page.on("pageerror", (error) => {
        this.#add({ kind: "pageerror", url: page.url(), text: error.stack ?? error.message });
      });
    };
    context.pages().forEach(watch);
    context.on("page", watch);
  }

  #add(problem: PageProblem) {
    if (this.#allow.some((a) => a.pattern.test(problem.text))) return;
    this.problems.push(problem);
  }

  /** The problems as readable lines (for an assertion message). */
  report(): string {
    return this.problems.map((p) => `[${p.kind}] ${p.url}: ${p.text}`).join("\n");
  }
}

/** Writes a full-page screenshot to `test-artifacts/screenshots/<name>.png`; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await Deno.mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = new URL(`${name}.png`, SCREENSHOT_DIR).pathname;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Waits until `GET <url>/health/ready` answers 200. */
export async function waitReady(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = "no answer";
  while (performance.now() < deadline) {
    try {
      const res = await fetch(`${url}/health/ready`);
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}/health/ready did not answer 200 in ${timeoutMs} ms: ${last}`);
}

/** Prints a note to stderr (lint forbids console; the test runner shows stderr). */
export function note(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`  · ${text}\n`));
}
