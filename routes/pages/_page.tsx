/**
 * What every dashboard page shares on the server: who is looking (the `te_access` cookie, checked
 * exactly as the API checks it), the time zone to render in, and rendering a page to a complete
 * HTML response. A page without a live session redirects to the login, which renews the session
 * silently when it can and comes back.
 */
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { VNode } from "preact";
import { renderToString } from "preact-render-to-string";
import { Layout, type Viewer } from "../../components/Layout.tsx";
import { isTimeZone } from "../../islands/_client/format.ts";
import { ApiError } from "../../lib/errors.ts";
import { sharedAssets } from "../../lib/assets.ts";
import { ACCESS_COOKIE, authenticateToken, type AuthUser } from "../_auth.ts";
import type { AppEnv } from "../_env.ts";
import { clientIp } from "../_middleware.ts";

/** The cookie the boot script sets to the browser's time zone. */
export const TZ_COOKIE = "te_tz";

/** The viewer's time zone: the `te_tz` cookie when it names a real zone, else UTC. */
export function viewerZone(c: Context<AppEnv>): string {
  const zone = getCookie(c, TZ_COOKIE);
  return zone && zone.length <= 64 && isTimeZone(zone) ? zone : "UTC";
}

/** The user of the session cookie, or null when there is none or it is no longer good. */
export async function pageUser(c: Context<AppEnv>): Promise<AuthUser | null> {
  const token = getCookie(c, ACCESS_COOKIE);
  if (!token) return null;
  try {
    return await authenticateToken(c.get("deps"), token, {
      via: "cookie",
      origin: {
        ip: clientIp(c),
        userAgent: c.req.header("user-agent"),
        requestId: c.get("requestId"),
      },
    });
  } catch (error) {
    if (error instanceof ApiError && error.code === "AUTHENTICATION_REQUIRED") return null;
    throw error;
  }
}

/** Where the login sends the browser back to: only a path on this site. */
export function safeNext(next: string | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.includes("\\")) return "/";
  return next.length > 512 ? "/" : next;
}

/** The login URL that comes back to this request's page. */
export function loginRedirect(c: Context<AppEnv>): Response {
  const url = new URL(c.req.url);
  const next = url.pathname + url.search;
  return c.redirect(next === "/" ? "/login" : `/login?next=${encodeURIComponent(next)}`, 303);
}

/** What a page handler gets. */
export interface PageContext {
  user: AuthUser;
  viewer: Viewer;
}

/** Renders `body` in the layout as a complete HTML response. */
export async function renderPage(
  c: Context<AppEnv>,
  page: { title: string; active?: string; viewer?: Viewer; body: VNode; status?: 200 | 400 | 404 },
): Promise<Response> {
  const assets = await sharedAssets();
  const zone = page.viewer?.zone ?? viewerZone(c);
  const html = "<!doctype html>" + renderToString(
    <Layout
      title={page.title}
      assets={assets}
      viewer={page.viewer}
      active={page.active}
      zone={zone}
    >
      {page.body}
    </Layout>,
  );
  c.header("Cache-Control", "no-store");
  return c.html(html, page.status ?? 200);
}

/**
 * A page that needs a signed-in user (an admin with `admin: true`): without one, the login; with
 * a trader on an admin page, a 404 page (the page's existence is not advertised).
 */
export function userPage(
  handler: (c: Context<AppEnv>, page: PageContext) => Promise<Response>,
  options: { admin?: boolean } = {},
): (c: Context<AppEnv>) => Promise<Response> {
  return async (c) => {
    const user = await pageUser(c);
    if (!user) return loginRedirect(c);
    c.set("userId", user.userId);
    c.set("role", user.role);
    c.set("email", user.email);
    c.set("sessionId", user.sessionId);
    c.set("authVia", "cookie");
    const viewer: Viewer = { email: user.email, role: user.role, zone: viewerZone(c) };
    if (options.admin && user.role !== "admin") return notFoundPage(c, viewer);
    return await handler(c, { user, viewer });
  };
}

/** The page for a path that has none. */
export function notFoundPage(c: Context<AppEnv>, viewer?: Viewer): Promise<Response> {
  return renderPage(c, {
    title: "Not found",
    viewer,
    status: 404,
    body: (
      <section class="card">
        <h1>Not found</h1>
        <p>
          There is no page at <code>{c.req.path}</code>. <a href="/">Go to the overview</a>.
        </p>
      </section>
    ),
  });
}
