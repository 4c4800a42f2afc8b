/**
 * Helpers of the dashboard page suites: the real runtime in-process on PGlite (its own data
 * folder) or on a fresh PostgreSQL database, webhooks posted through the real pipeline, and pages
 * fetched with a trader's session cookie.
 */
import assert from "node:assert/strict";
import type { DbEngine } from "../db/client.ts";
import { accessTokenFor, insertTrader } from "./_fixtures.ts";
import {
  alert,
  eventually,
  freshDatabase,
  type InProcess,
  JWT_SECRET,
  postAlert,
  startInProcess,
  waitFilled,
} from "./_pipeline.ts";

/** The runtime of one page test, disposed at the end. */
export interface PagesRuntime extends AsyncDisposable {
  app: InProcess;
  /** Sends one alert with `key` and waits until the executor is done with it. */
  signal(key: string, fields: Record<string, unknown>, expect?: string): Promise<string>;
  /** GETs a page as `userId` (session cookie; `zone` as the browser reports it). */
  page(userId: string, path: string, zone?: string): Promise<{ status: number; html: string }>;
}

/** Boots the runtime on `engine`. */
export async function startPages(engine: DbEngine): Promise<PagesRuntime> {
  const database = engine === "postgres" ? await freshDatabase() : undefined;
  let app: InProcess;
  try {
    app = await startInProcess(database ? { DATABASE_URL: database.url } : {});
  } catch (error) {
    await database?.[Symbol.asyncDispose]();
    throw error;
  }
  const db = app.runtime.db;
  return {
    app,
    async signal(key, fields, expect = "filled") {
      const res = await postAlert(app.url, alert(key, fields));
      assert.equal(res.status, 202, JSON.stringify(res.body));
      const id: string = res.body.signal_id;
      if (expect === "filled") await waitFilled(app.runtime, db, id);
      else {
        await eventually(`signal ${id} is ${expect}`, async () => {
          const [row] = await db.query<{ status: string }>(
            "SELECT status FROM signals WHERE id = $1",
            [id],
          );
          return row?.status === expect;
        });
      }
      return id;
    },
    async page(userId, path, zone) {
      const { token } = await accessTokenFor(db, { id: userId, role: "trader" }, {
        secret: JWT_SECRET,
        now: Date.now(),
      });
      const cookie = `te_access=${token}${zone ? `; te_tz=${encodeURIComponent(zone)}` : ""}`;
      const res = await fetch(`${app.url}${path}`, {
        headers: { Cookie: cookie },
        redirect: "manual",
      });
      return { status: res.status, html: await res.text() };
    },
    async [Symbol.asyncDispose]() {
      try {
        await app[Symbol.asyncDispose]();
      } finally {
        await database?.[Symbol.asyncDispose]();
      }
    },
  };
}

export { insertTrader };

/** The `data-<attr>` values of `html`, in document order. */
export function dataIds(html: string, attr: string): string[] {
  return [...html.matchAll(new RegExp(`data-${attr}="([^"]+)"`, "g"))].map((m) => m[1]!);
}

/** The HTML of the table row `data-<attr>="<id>"`. */
export function rowOf(html: string, attr: string, id: string): string {
  const start = html.indexOf(`data-${attr}="${id}"`);
  assert.ok(start >= 0, `a row for ${id}`);
  return html.slice(start, html.indexOf("</tr>", start));
}

/** The href of the "Older →" link, HTML entities decoded; null when there is none. */
export function olderLink(html: string): string | null {
  const match = /<a href="([^"]+)" rel="next">Older →<\/a>/.exec(html);
  return match ? match[1]!.replaceAll("&amp;", "&") : null;
}
