/**
 * The overview's latest signals, live: a signal appears the moment the webhook is accepted, turns
 * "filled" with its price when the broker fills it, or "rejected" with the reason — without a
 * reload. After a gap the hub cannot replay (resync), the page is rendered again.
 */
import { useEffect, useState } from "preact/hooks";
import type { RecentSignal } from "../db/dashboard.ts";
import { formatNumber, formatTime } from "./_client/format.ts";
import { liveConnection, type LiveEvent, type LiveStatus } from "./_client/live.ts";

/** Props. */
export interface LiveSignalsProps {
  signals: RecentSignal[];
  /** Account aliases by id, to name the account of a live event. */
  accounts: Record<string, string>;
  zone: string;
  limit: number;
  [key: string]: unknown;
}

const STATUS_LABEL: Record<LiveStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting",
  signed_out: "Signed out",
};

/** Applies one live event to the list (a new list; unchanged when the event is not about it). */
export function applyEvent(
  list: RecentSignal[],
  event: LiveEvent,
  accounts: Record<string, string>,
  limit: number,
): RecentSignal[] {
  const id = event.signal_id;
  if (!id) return list;
  const data = event.data;
  const at = list.findIndex((s) => s.id === id);
  const str = (v: unknown) => (v === null || v === undefined ? null : String(v));
  if (event.type === "signal.received" || (event.type === "signal.rejected" && at < 0)) {
    if (at >= 0) return list;
    const row: RecentSignal = {
      id,
      status: event.type === "signal.received" ? "accepted" : str(data.status) ?? "rejected",
      reason: event.type === "signal.rejected" ? str(data.reason) : null,
      account: event.account_id ? accounts[event.account_id] ?? null : null,
      symbol: str(data.symbol),
      ticker: str(data.ticker),
      action: str(data.action),
      quantity: str(data.quantity),
      received_at: event.at,
      finished_at: event.type === "signal.rejected" ? event.at : null,
      order_status: null,
      fill_price: null,
      filled_at: null,
    };
    return [row, ...list].slice(0, limit);
  }
  if (at < 0) return list;
  const row = { ...list[at]! };
  if (event.type === "signal.rejected") {
    row.status = str(data.status) ?? "rejected";
    row.reason = str(data.reason);
    row.finished_at = event.at;
  } else if (event.type.startsWith("trade.") && (data.leg ?? "entry") === "entry") {
    row.order_status = str(data.status);
    if (data.averageFillPrice) row.fill_price = str(data.averageFillPrice);
    if (data.status === "filled") {
      row.status = "filled";
      row.filled_at ??= event.at;
      row.finished_at ??= event.at;
    } else if (row.status === "accepted" || row.status === "executing") row.status = "placed";
  } else return list;
  const next = [...list];
  next[at] = row;
  return next;
}

export default function LiveSignals({ signals, accounts, zone, limit }: LiveSignalsProps) {
  const [list, setList] = useState(signals);
  const [status, setStatus] = useState<LiveStatus>("connecting");

  useEffect(() => {
    return liveConnection().listen({
      event: (event) => {
        if (event.channel === "signals" || event.channel === "trades") {
          setList((current) => applyEvent(current, event, accounts, limit));
        }
      },
      // Events were lost for good (the server restarted, or this tab slept too long): the page
      // renders the current state again.
      resync: () => location.reload(),
      status: (s) => setStatus(s),
    });
  }, []);

  return (
    <section class="card" aria-labelledby="latest-signals">
      <div class="card-title">
        <h2 id="latest-signals">Latest signals</h2>
        <span class={`live-dot ${status}`} role="status" data-live-status={status}>
          {STATUS_LABEL[status]}
        </span>
      </div>
      {list.length === 0
        ? (
          <p class="empty-inline" data-testid="no-signals">
            No signals yet. Create a webhook key in{" "}
            <a href="/settings#keys">Settings</a>, paste its alert message into a TradingView alert,
            and signals show up here as they arrive.
          </p>
        )
        : (
          <div class="table-wrap">
            <table class="table" data-testid="live-signals">
              <thead>
                <tr>
                  <th scope="col">Received</th>
                  <th scope="col">Symbol</th>
                  <th scope="col">Action</th>
                  <th scope="col" class="num">Qty</th>
                  <th scope="col">Account</th>
                  <th scope="col">Status</th>
                  <th scope="col" class="num">Fill</th>
                </tr>
              </thead>
              <tbody>
                {list.map((s) => (
                  <tr key={s.id} data-signal-id={s.id} data-status={s.status}>
                    <td>
                      <a href={`/signals/${s.id}`}>
                        <time dateTime={s.received_at}>{formatTime(s.received_at, zone)}</time>
                      </a>
                    </td>
                    <td>{s.symbol ?? s.ticker ?? "—"}</td>
                    <td>{s.action ?? "—"}</td>
                    <td class="num">{formatNumber(s.quantity)}</td>
                    <td>{s.account ?? "—"}</td>
                    <td>
                      <span class={`badge ${s.status}`}>{s.status}</span>
                      {s.reason && <div class="reason">{s.reason}</div>}
                    </td>
                    <td class="num">{s.fill_price ? formatNumber(s.fill_price) : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </section>
  );
}
