/**
 * The page shell every dashboard page shares: head (stylesheet, boot script), a skip link, the
 * navigation, and the main area. Pages render inside it on the server.
 */
import type { ComponentChildren } from "preact";
import LogoutButton from "../islands/LogoutButton.tsx";
import { formatTime } from "../islands/_client/format.ts";
import { Island } from "./Island.tsx";

/** The pages in the navigation, in order. */
export const NAV = [
  { href: "/", label: "Overview", key: "overview" },
  { href: "/signals", label: "Signals", key: "signals" },
  { href: "/orders", label: "Orders & trades", key: "orders" },
  { href: "/chart", label: "Chart", key: "chart" },
  { href: "/settings", label: "Settings", key: "settings" },
  { href: "/system", label: "System", key: "system", admin: true },
] as const;

/** Who is looking at the page. */
export interface Viewer {
  email: string;
  role: "admin" | "trader";
  /** The IANA time zone times are rendered in. */
  zone: string;
}

/** What the shell needs. */
export interface LayoutProps {
  title: string;
  assets: { cssUrl: string; bootUrl: string; iconUrl: string };
  /** Absent on the login and setup pages. */
  viewer?: Viewer;
  /** The `NAV` key of the current page. */
  active?: string;
  zone: string;
  children: ComponentChildren;
}

/** The document around a page. */
export function Layout({ title, assets, viewer, active, zone, children }: LayoutProps) {
  return (
    <html lang="en" data-tz={zone}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="dark" />
        <title>{`${title} · trendedge`}</title>
        <link rel="icon" href={assets.iconUrl} type="image/svg+xml" />
        <link rel="stylesheet" href={assets.cssUrl} />
        <script type="module" src={assets.bootUrl} defer />
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">trendedge</a>
          {viewer && (
            <nav aria-label="Main">
              <ul>
                {NAV.filter((item) => !("admin" in item) || viewer.role === "admin").map((item) => (
                  <li key={item.key}>
                    <a
                      href={item.href}
                      aria-current={item.key === active ? "page" : undefined}
                    >
                      {item.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          {viewer && (
            <div class="who">
              <span title={`Times in ${viewer.zone}`}>{viewer.email}</span>
              <Island of={LogoutButton} props={{}} />
            </div>
          )}
        </header>
        <main id="main" tabIndex={-1}>
          {children}
        </main>
      </body>
    </html>
  );
}

/** A page heading with an optional line under it. */
export function PageHeader({ title, lead }: { title: string; lead?: ComponentChildren }) {
  return (
    <div class="page-header">
      <h1>{title}</h1>
      {lead && <p class="lead">{lead}</p>}
    </div>
  );
}

/** What a new user sees instead of an empty table: what is missing and what to do next. */
export function EmptyState(
  { title, children }: { title: string; children: ComponentChildren },
) {
  return (
    <div class="empty" role="status">
      <strong>{title}</strong>
      <div>{children}</div>
    </div>
  );
}

/** A time rendered in the viewer's zone (the boot script re-renders it if the zone differs). */
export function Time({ iso, zone }: { iso: string | null | undefined; zone: string }) {
  if (!iso) return <span class="muted">—</span>;
  return <time dateTime={iso}>{formatTime(iso, zone)}</time>;
}
