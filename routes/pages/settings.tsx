/**
 * `/settings`: what a trader sets up — webhook keys (with the TradingView alert message to copy),
 * broker accounts and their risk limits, the kill switch, notification channels, watchlists.
 */
import { Hono } from "hono";
import { Island } from "../../components/Island.tsx";
import { PageHeader } from "../../components/Layout.tsx";
import { listWebhookKeys } from "../../db/webhook_keys.ts";
import KeysManager from "../../islands/KeysManager.tsx";
import type { AppEnv } from "../_env.ts";
import { presentWebhookKey, webhookUrl } from "../keys.ts";
import { renderPage, userPage } from "./_page.tsx";

/** The settings page. */
export const settingsPage = new Hono<AppEnv>();

settingsPage.get(
  "/settings",
  userPage(async (c, { user, viewer }) => {
    const { db, clock } = c.get("deps");
    const now = clock.now();
    const url = webhookUrl(c);
    const keys = (await listWebhookKeys(db, user.userId)).map((row) =>
      presentWebhookKey(row, { now, url })
    );
    return renderPage(c, {
      title: "Settings",
      active: "settings",
      viewer,
      body: (
        <>
          <PageHeader title="Settings" />
          <Island of={KeysManager} props={{ keys, zone: viewer.zone }} />
        </>
      ),
    });
  }),
);
