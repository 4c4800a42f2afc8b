/**
 * The overview's open positions, live: after trade events (debounced) the table is read again
 * from `GET /api/v1/positions`, so a fill shows without a reload.
 */
import { useEffect, useState } from "preact/hooks";
import type { PositionView } from "../db/reads.ts";
import { api } from "./_client/api.ts";
import { formatMoney, formatNumber, formatTime, pnlClass } from "./_client/format.ts";
import { liveConnection } from "./_client/live.ts";
import { debounce } from "./_client/refresh.ts";

/** Props. */
export interface LivePositionsProps {
  positions: PositionView[];
  zone: string;
  [key: string]: unknown;
}

const SETTLE_MS = 300;

export default function LivePositions({ positions, zone }: LivePositionsProps) {
  const [list, setList] = useState(positions);

  useEffect(() => {
    const reload = debounce(async () => {
      try {
        const { data } = await api<{ data: PositionView[] }>("GET", "/api/v1/positions");
        setList(data);
      } catch {
        // The next event tries again.
      }
    }, SETTLE_MS);
    return liveConnection().listen({
      event: (event) => {
        if (event.channel === "trades") reload();
      },
      resync: reload,
    });
  }, []);

  return (
    <section class="card" aria-labelledby="positions" data-live-positions={list.length}>
      <h2 id="positions">Open positions</h2>
      {list.length === 0 ? <p class="empty-inline">No open positions.</p> : (
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
              {list.map((p) => {
                const unrealized = p.last_price === null ? null : String(
                  Number(p.quantity) * (Number(p.last_price) - Number(p.average_price)),
                );
                return (
                  <tr
                    key={`${p.account_id}:${p.symbol}`}
                    data-position={`${p.account}:${p.symbol}`}
                    data-quantity={p.quantity}
                  >
                    <td>{p.account}</td>
                    <td>
                      <a href={`/chart?symbol=${encodeURIComponent(p.symbol)}`}>{p.symbol}</a>
                    </td>
                    <td class="num">{formatNumber(p.quantity)}</td>
                    <td class="num">{formatNumber(p.average_price)}</td>
                    <td class="num">{formatNumber(p.last_price)}</td>
                    <td class={`num ${pnlClass(unrealized)}`}>{formatMoney(unrealized)}</td>
                    <td>
                      {p.opened_at
                        ? <time dateTime={p.opened_at}>{formatTime(p.opened_at, zone)}</time>
                        : <span class="muted">—</span>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
