/**
 * The overview's account cards, live: equity, P&L today, unrealized P&L and open positions are
 * read again (from the overview page itself, debounced) after trade events, and a breaker badge
 * changes the moment its breaker opens or closes.
 */
import { useEffect, useState } from "preact/hooks";
import type { AccountSummary } from "../db/dashboard.ts";
import { accountKind, formatMoney, pnlClass } from "./_client/format.ts";
import { liveConnection } from "./_client/live.ts";
import { debounce, fetchIslandProps } from "./_client/refresh.ts";

/** One card: an account's figures and its breaker. */
export interface AccountCard extends AccountSummary {
  breaker: "closed" | "open" | "half_open";
}

/** Props. */
export interface LiveAccountsProps {
  accounts: AccountCard[];
  [key: string]: unknown;
}

/** Paper equity: starting cash plus realized and unrealized P&L (null: at the broker). */
export function equity(a: AccountSummary): string | null {
  if (a.starting_cash === null) return null;
  return String(Number(a.starting_cash) + Number(a.realized_total) + Number(a.unrealized));
}

/** How long a burst of events is waited out before the figures are read again. */
const SETTLE_MS = 300;

export default function LiveAccounts({ accounts }: LiveAccountsProps) {
  const [cards, setCards] = useState(accounts);

  useEffect(() => {
    const reload = debounce(async () => {
      try {
        const props = await fetchIslandProps("/", "LiveAccounts");
        if (props) setCards((props as LiveAccountsProps).accounts);
      } catch {
        // The next event tries again; the connection status shows whether the server answers.
      }
    }, SETTLE_MS);
    return liveConnection().listen({
      event: (event) => {
        if (event.type === "breaker.opened" || event.type === "breaker.closed") {
          const breaker = event.type === "breaker.opened" ? "open" : "closed";
          setCards((list) =>
            list.map((a) => (a.account_id === event.account_id ? { ...a, breaker } : a))
          );
        }
        if (event.channel === "trades" || event.channel === "system") reload();
      },
      resync: reload,
    });
  }, []);

  return (
    <div class="grid accounts" data-live-accounts>
      {cards.map((a) => (
        <section class="card stat" key={a.account_id} data-account={a.alias}>
          <div class="card-title">
            <h2>{a.alias}</h2>
            <span class={`badge ${a.live ? "live" : "paper"}`}>
              {accountKind(a)}
            </span>
          </div>
          <dl>
            <div>
              <dt>Equity</dt>
              <dd data-equity>{equity(a) === null ? "at Alpaca" : formatMoney(equity(a))}</dd>
            </div>
            <div>
              <dt>P&amp;L today</dt>
              <dd class={pnlClass(a.realized_since)} data-pnl-today>
                {formatMoney(a.realized_since)}
              </dd>
            </div>
            <div>
              <dt>Unrealized</dt>
              <dd class={pnlClass(a.unrealized)} data-unrealized>{formatMoney(a.unrealized)}</dd>
            </div>
            <div>
              <dt>Open positions</dt>
              <dd data-open-positions>{a.open_positions}</dd>
            </div>
            <div>
              <dt>Breaker</dt>
              <dd>
                <span class={`badge breaker-${a.breaker}`} data-breaker={a.breaker}>
                  {a.breaker === "closed" ? "ok" : a.breaker.replace("_", " ")}
                </span>
              </dd>
            </div>
          </dl>
          {a.kill_switch && <p class="banner danger">Kill switch on: new signals are rejected.</p>}
        </section>
      ))}
    </div>
  );
}
