/**
 * `/`: the overview. Per broker account: equity (paper accounts; an Alpaca account's equity is at
 * Alpaca), P&L today and unrealized, open positions, the circuit breaker; the open positions; the
 * kill switches; the latest signals. Signals, cards and positions follow live events without a
 * reload. A new user is told what to do first.
 */
import { Hono } from "hono";
import { EmptyState, PageHeader } from "../../components/Layout.tsx";
import { Island } from "../../components/Island.tsx";
import { getGlobalKillSwitch } from "../../db/accounts.ts";
import { accountSummaries, recentSignals, startOfDay } from "../../db/dashboard.ts";
import { listPositions } from "../../db/reads.ts";
import { listWebhookKeys } from "../../db/webhook_keys.ts";
import KillSwitch from "../../islands/KillSwitch.tsx";
import LiveAccounts from "../../islands/LiveAccounts.tsx";
import LivePositions from "../../islands/LivePositions.tsx";
import LiveSignals from "../../islands/LiveSignals.tsx";
import type { AppEnv } from "../_env.ts";
import { renderPage, userPage } from "./_page.tsx";

/** How many signals the overview lists. */
const LATEST = 20;

/** The overview page. */
export const overviewPage = new Hono<AppEnv>();

overviewPage.get(
  "/",
  userPage(async (c, { user, viewer }) => {
    const { db, clock, breakerState } = c.get("deps");
    const [summaries, signals, positions, keys, global] = await Promise.all([
      accountSummaries(db, user.userId, startOfDay(clock.now(), viewer.zone)),
      recentSignals(db, user.userId, LATEST),
      listPositions(db, user.userId),
      listWebhookKeys(db, user.userId),
      getGlobalKillSwitch(db),
    ]);
    const breakers = await Promise.all(summaries.map((a) => breakerState(a.account_id)));
    const activeKeys = keys.filter((k) =>
      !k.revokedAt && (!k.expiresAt || k.expiresAt > new Date(clock.now()))
    );
    return renderPage(c, {
      title: "Overview",
      active: "overview",
      viewer,
      body: (
        <>
          <PageHeader title="Overview" />
          {activeKeys.length === 0 && (
            <EmptyState title="Connect TradingView to start">
              <p>
                You have no webhook key yet. <a href="/settings#keys">Create one in Settings</a>,
                {" "}
                then paste the alert message it shows into a TradingView alert with the webhook URL.
                Signals go to your <strong>paper</strong> account until you add a broker account.
              </p>
            </EmptyState>
          )}
          <Island
            of={LiveAccounts}
            props={{
              accounts: summaries.map((a, i) => ({ ...a, breaker: breakers[i] ?? "closed" })),
            }}
          />
          <Island
            of={LiveSignals}
            props={{
              signals,
              accounts: Object.fromEntries(summaries.map((a) => [a.account_id, a.alias])),
              zone: viewer.zone,
              limit: LATEST,
            }}
          />
          <div class="grid two">
            <Island of={LivePositions} props={{ positions, zone: viewer.zone }} />
            <Island
              of={KillSwitch}
              props={{
                accounts: summaries.map((a) => ({ alias: a.alias, kill_switch: a.kill_switch })),
                global,
                admin: user.role === "admin",
              }}
            />
          </div>
        </>
      ),
    });
  }),
);
