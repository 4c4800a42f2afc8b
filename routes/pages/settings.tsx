/**
 * `/settings`: what a trader sets up — webhook keys (with the TradingView alert message to copy),
 * broker accounts and their risk limits, the kill switch, notification channels, watchlists and
 * scan settings, and their password and sessions. Everything is read for the signed-in user only;
 * the islands change it through the JSON API.
 */
import { Hono } from "hono";
import { Island } from "../../components/Island.tsx";
import { PageHeader } from "../../components/Layout.tsx";
import { getGlobalKillSwitch, listAccounts } from "../../db/accounts.ts";
import { listChannels } from "../../db/notifications.ts";
import { listSessions } from "../../db/sessions.ts";
import { listWatches, readScanSettings } from "../../db/trendlines.ts";
import { listWebhookKeys } from "../../db/webhook_keys.ts";
import AccountsManager, { type AccountView } from "../../islands/AccountsManager.tsx";
import ChannelsManager, { type ChannelView } from "../../islands/ChannelsManager.tsx";
import KeysManager from "../../islands/KeysManager.tsx";
import KillSwitch from "../../islands/KillSwitch.tsx";
import SecurityPanel, { type SessionView } from "../../islands/SecurityPanel.tsx";
import WatchlistsManager from "../../islands/WatchlistsManager.tsx";
import { NOTIFY_EVENT_TYPES } from "../../lib/notify.ts";
import { SCAN_TIMEFRAMES } from "../../lib/schedule.ts";
import { DEFAULT_SCAN_SETTINGS } from "../../lib/trendlines.ts";
import type { AppEnv } from "../_env.ts";
import { presentWebhookKey, webhookUrl } from "../keys.ts";
import { renderPage, userPage } from "./_page.tsx";

/** The settings page. */
export const settingsPage = new Hono<AppEnv>();

const SECTIONS = [
  ["keys", "Webhook keys"],
  ["accounts", "Broker accounts"],
  ["kill-switch", "Kill switch"],
  ["notifications", "Notifications"],
  ["watchlists", "Watchlists & scans"],
  ["security", "Account & security"],
] as const;

settingsPage.get(
  "/settings",
  userPage(async (c, { user, viewer }) => {
    const { db, clock } = c.get("deps");
    const now = clock.now();
    const url = webhookUrl(c);
    const [keyRows, accountRows, global, channelRows, watchRows, saved, sessionRows] = await Promise
      .all([
        listWebhookKeys(db, user.userId),
        listAccounts(db, user.userId),
        getGlobalKillSwitch(db),
        listChannels(db, user.userId),
        listWatches(db, user.userId),
        readScanSettings(db, user.userId),
        listSessions(db, user.userId, now),
      ]);
    const keys = keyRows.map((row) => presentWebhookKey(row, { now, url }));
    // Credentials are never read here: the row only says whether there are some.
    const accounts: AccountView[] = accountRows.map((a) => ({
      alias: a.alias,
      broker: a.broker,
      live: a.live,
      kill_switch: a.killSwitch,
      has_credentials: a.hasCredentials,
      symbol_map: a.symbolMap,
      micro_futures: a.microFutures,
      risk: a.risk,
      paper: a.paper,
      created_at: a.createdAt.toISOString(),
    }));
    // Channel secrets stay sealed in the database: only name, kind and chat id are shown.
    const channels: ChannelView[] = channelRows.map((ch) => ({
      id: ch.id,
      kind: ch.kind,
      name: ch.name,
      chat_id: ch.chatId,
      events: ch.events,
      enabled: ch.enabled,
      created_at: ch.createdAt.toISOString(),
    }));
    const scan = { ...DEFAULT_SCAN_SETTINGS, ...saved };
    const sessions: SessionView[] = sessionRows.map((s) => ({
      id: s.id,
      created_at: s.createdAt.toISOString(),
      last_used_at: s.lastUsedAt.toISOString(),
      expires_at: s.expiresAt.toISOString(),
      ip: s.ip,
      user_agent: s.userAgent,
      current: s.id === user.sessionId,
    }));
    return renderPage(c, {
      title: "Settings",
      active: "settings",
      viewer,
      body: (
        <>
          <PageHeader title="Settings" />
          <nav class="toc" aria-label="Settings sections">
            <ul>
              {SECTIONS.map(([id, label]) => (
                <li key={id}>
                  <a href={`#${id}`}>{label}</a>
                </li>
              ))}
            </ul>
          </nav>
          <Island of={KeysManager} props={{ keys, zone: viewer.zone }} />
          <Island of={AccountsManager} props={{ accounts, zone: viewer.zone }} />
          <Island
            of={KillSwitch}
            props={{
              accounts: accounts.map((a) => ({ alias: a.alias, kill_switch: a.kill_switch })),
              global,
              admin: user.role === "admin",
            }}
          />
          <Island
            of={ChannelsManager}
            props={{ channels, eventTypes: [...NOTIFY_EVENT_TYPES], zone: viewer.zone }}
          />
          <Island
            of={WatchlistsManager}
            props={{
              watches: watchRows.map((w) => ({ symbol: w.symbol, timeframe: w.timeframe })),
              timeframes: [...SCAN_TIMEFRAMES],
              settings: {
                pivot_window: scan.pivotWindow,
                tolerance_mode: scan.toleranceMode,
                tolerance: scan.tolerance,
                min_touches: scan.minTouches,
                max_lines: scan.maxLines,
              },
            }}
          />
          <Island
            of={SecurityPanel}
            props={{ email: user.email, sessions, zone: viewer.zone }}
          />
        </>
      ),
    });
  }),
);
