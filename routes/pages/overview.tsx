/**
 * `/`: the overview. Per broker account: equity (paper accounts; an Alpaca account's equity is at
 * Alpaca), P&L today and unrealized, open positions, the circuit breaker; the kill switches; the
 * latest signals, live. A new user is told what to do first.
 */
import { Hono } from "hono";
import { EmptyState, PageHeader, Time } from "../../components/Layout.tsx";
import { Island } from "../../components/Island.tsx";
import { getGlobalKillSwitch } from "../../db/accounts.ts";
import {
  accountSummaries,
  type AccountSummary,
  recentSignals,
  startOfDay,
} from "../../db/dashboard.ts";
import { listPositions } from "../../db/reads.ts";
import { listWebhookKeys } from "../../db/webhook_keys.ts";
import KillSwitch from "../../islands/KillSwitch.tsx";
import LiveSignals from "../../islands/LiveSignals.tsx";
import { formatMoney, formatNumber, pnlClass } from "../../islands/_client/format.ts";
import type { AppEnv } from "../_env.ts";
import { renderPage, userPage } from "./_page.tsx";

/** How many signals the overview lists. */
const LATEST = 20;

/** The overview page. */
export const overviewPage = new Hono<AppEnv>();

function equity(a: AccountSummary): string | null {
  if (a.starting_cash === null) return null;
  return String(Number(a.starting_cash) + Number(a.realized_total) + Number(a.unrealized));
}

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
          <div class="grid accounts">
            {summaries.map((a, i) => (
              <section class="card stat" key={a.account_id} data-account={a.alias}>
                <div class="card-title">
                  <h2>{a.alias}</h2>
                  <span class={`badge ${a.live ? "live" : "paper"}`}>
                    {a.broker === "paper"
                      ? "simulated"
                      : `${a.broker} · ${a.live ? "live" : "paper"}`}
                  </span>
                </div>
                <dl>
                  <div>
                    <dt>Equity</dt>
                    <dd>{equity(a) === null ? "at Alpaca" : formatMoney(equity(a))}</dd>
                  </div>
                  <div>
                    <dt>P&amp;L today</dt>
                    <dd class={pnlClass(a.realized_since)}>{formatMoney(a.realized_since)}</dd>
                  </div>
                  <div>
                    <dt>Unrealized</dt>
                    <dd class={pnlClass(a.unrealized)}>{formatMoney(a.unrealized)}</dd>
                  </div>
                  <div>
                    <dt>Open positions</dt>
                    <dd>{a.open_positions}</dd>
                  </div>
                  <div>
                    <dt>Breaker</dt>
                    <dd>
                      <span class={`badge breaker-${breakers[i]}`} data-breaker={breakers[i]}>
                        {breakers[i] === "closed" ? "ok" : breakers[i]?.replace("_", " ")}
                      </span>
                    </dd>
                  </div>
                </dl>
                {a.kill_switch && (
                  <p class="banner danger">Kill switch on: new signals are rejected.</p>
                )}
              </section>
            ))}
          </div>
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
            <section class="card" aria-labelledby="positions">
              <h2 id="positions">Open positions</h2>
              {positions.length === 0
                ? <p class="empty-inline">No open positions.</p>
                : (
                  <div class="table-wrap">
                    <table class="table">
                      <thead>
                        <tr>
                          <th scope="col">Account</th>
                          <th scope="col">Symbol</th>
                          <th scope="col" class="num">Qty</th>
                          <th scope="col" class="num">Avg price</th>
                          <th scope="col" class="num">Last</th>
                          <th scope="col" class="num">Unrealized</th>
                          <th scope="col">Opened</th>
                        </tr>
                      </thead>
                      <tbody>
                        {positions.map((p) => {
                          const unrealized = p.last_price === null ? null : String(
                            Number(p.quantity) * (Number(p.last_price) - Number(p.average_price)),
                          );
                          return (
                            <tr key={`${p.account_id}:${p.symbol}`}>
                              <td>{p.account}</td>
                              <td>
                                <a href={`/chart?symbol=${encodeURIComponent(p.symbol)}`}>
                                  {p.symbol}
                                </a>
                              </td>
                              <td class="num">{formatNumber(p.quantity)}</td>
                              <td class="num">{formatNumber(p.average_price)}</td>
                              <td class="num">{formatNumber(p.last_price)}</td>
                              <td class={`num ${pnlClass(unrealized)}`}>
                                {formatMoney(unrealized)}
                              </td>
                              <td>
                                <Time iso={p.opened_at} zone={viewer.zone} />
                              </td>
                            </tr>
                          );
                        })}
                      </tbody>
                    </table>
                  </div>
                )}
            </section>
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
