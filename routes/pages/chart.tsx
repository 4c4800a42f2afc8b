/**
 * `/chart?symbol=S&timeframe=T`: the last bars of one of the trader's symbols as candlesticks,
 * their active trendlines on that timeframe, and their fills as buy/sell arrows. The symbols
 * offered are the ones with stored bars or on the watchlist; a new user is told how to get bars.
 */
import { Hono } from "hono";
import { Island } from "../../components/Island.tsx";
import { EmptyState, PageHeader, Time } from "../../components/Layout.tsx";
import { type Bar, readBars, type Timeframe, TIMEFRAMES } from "../../db/bars.ts";
import { type ChartFill, chartSeries, symbolFills } from "../../db/chart.ts";
import { listTrendlines, type StoredTrendline } from "../../db/trendlines.ts";
import Chart, { type ChartLine, type ChartMarker } from "../../islands/Chart.tsx";
import { formatNumber } from "../../islands/_client/format.ts";
import { SCAN_TIMEFRAMES, type ScanTimeframe } from "../../lib/schedule.ts";
import { lineValue } from "../../lib/trendlines.ts";
import type { AppEnv } from "../_env.ts";
import { renderPage, userPage } from "./_page.tsx";

/** How many bars the chart shows. */
export const CHART_BARS = 500;

/** What a symbol may look like (as stored: 1–64 characters, no spaces). */
const SYMBOL = /^[A-Za-z0-9._:/!^&=-]{1,64}$/;

/** The chart page. */
export const chartPage = new Hono<AppEnv>();

/** The index of the last bar opening at or before `at` (-1 when before the first). */
function barAt(bars: readonly Bar[], at: number): number {
  let lo = 0;
  let hi = bars.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (bars[mid]!.ts.getTime() <= at) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/** A stored line from its first anchor (or the first bar fills) to the last bar. */
export function chartLine(line: StoredTrendline, bars: readonly Bar[]): ChartLine | null {
  const first = bars[0];
  const last = bars.at(-1);
  if (!first || !last || line.t1 > last.ts) return null;
  const start = line.t1 < first.ts ? first.ts : line.t1;
  return {
    id: line.id,
    kind: line.kind,
    from: { time: seconds(start), value: lineValue(line, start) },
    to: { time: seconds(last.ts), value: lineValue(line, last.ts) },
  };
}

/**
 * Fills as markers on the bar they happened in, one per bar and side with the summed quantity
 * ("B 10", "S 41 ×2"): the prices would overlap between neighbouring bars, so they are in the
 * fills table under the chart. Fills before the first bar are left out.
 */
export function chartMarkers(fills: readonly ChartFill[], bars: readonly Bar[]): ChartMarker[] {
  const byBar = new Map<string, Omit<ChartMarker, "text"> & { quantity: number; count: number }>();
  for (const fill of fills) {
    const at = barAt(bars, new Date(fill.filled_at).getTime());
    if (at < 0) continue;
    const time = seconds(bars[at]!.ts);
    const key = `${time}:${fill.side}`;
    const seen = byBar.get(key) ?? { time, side: fill.side, quantity: 0, count: 0 };
    seen.quantity += Number(fill.quantity);
    seen.count += 1;
    byBar.set(key, seen);
  }
  return [...byBar.values()].map(({ time, side, quantity, count }) => ({
    time,
    side,
    text: `${side === "buy" ? "B" : "S"} ${formatNumber(quantity)}${count > 1 ? ` ×${count}` : ""}`,
  }));
}

/** How many of the newest fills the table under the chart lists. */
export const CHART_FILLS_LISTED = 10;

chartPage.get(
  "/chart",
  userPage(async (c, { user, viewer }) => {
    const { db } = c.get("deps");
    const series = await chartSeries(db, user.userId);
    const symbolParam = c.req.query("symbol")?.trim();
    const timeframeParam = c.req.query("timeframe")?.trim();

    let problem: string | null = null;
    if (symbolParam && !SYMBOL.test(symbolParam)) {
      problem = `Cannot show the chart: symbol "${
        symbolParam.slice(0, 64)
      }" is not a symbol (1–64 letters, digits or . _ : / ! ^ & = -)`;
    } else if (timeframeParam && !(TIMEFRAMES as readonly string[]).includes(timeframeParam)) {
      problem = `Cannot show the chart: timeframe "${timeframeParam.slice(0, 16)}" is not one of ${
        TIMEFRAMES.join(", ")
      }`;
    }

    const withBars = series.filter((s) => s.has_bars);
    const symbol = symbolParam
      ? series.find((s) => s.symbol === symbolParam)?.symbol ?? symbolParam.toUpperCase()
      : (withBars[0] ?? series[0])?.symbol;
    const timeframe = (timeframeParam ||
      (series.find((s) => s.symbol === symbol && s.has_bars) ??
        series.find((s) => s.symbol === symbol))?.timeframe ||
      "1d") as Timeframe;
    const symbols = [...new Set(series.map((s) => s.symbol))];

    const form = (
      <form class="form inline filters" method="get" action="/chart" aria-label="Chart">
        <label>
          Symbol
          <input
            name="symbol"
            list="chart-symbols"
            value={symbolParam ?? symbol ?? ""}
            required
            maxLength={64}
            autocomplete="off"
            spellcheck={false}
          />
          <datalist id="chart-symbols">
            {symbols.map((s) => <option key={s} value={s} />)}
          </datalist>
        </label>
        <label>
          Timeframe
          <select name="timeframe">
            {TIMEFRAMES.map((t) => (
              <option key={t} value={t} selected={t === (timeframeParam ?? timeframe)}>
                {t}
                {symbol && series.some((s) =>
                    s.symbol === symbol && s.timeframe === t && s.has_bars
                  )
                  ? " · bars"
                  : ""}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Show</button>
      </form>
    );

    if (problem) {
      return renderPage(c, {
        title: "Chart",
        active: "chart",
        viewer,
        status: 400,
        body: (
          <>
            <PageHeader title="Chart" />
            {form}
            <p class="banner danger" role="alert">{problem}</p>
          </>
        ),
      });
    }

    const bars = symbol
      ? await readBars(db, { userId: user.userId, symbol, timeframe }, { limit: CHART_BARS })
      : [];
    const first = bars[0];
    const last = bars.at(-1);
    const [stored, fills] = first
      ? await Promise.all([
        (SCAN_TIMEFRAMES as readonly string[]).includes(timeframe)
          ? listTrendlines(db, user.userId, {
            symbol: symbol!,
            timeframe: timeframe as ScanTimeframe,
            status: "active",
          })
          : Promise.resolve([]),
        symbolFills(db, user.userId, { symbol: symbol!, since: first.ts }),
      ])
      : [[], []];
    const lines = stored.flatMap((l) => chartLine(l, bars) ?? []);
    const markers = chartMarkers(fills, bars);

    return renderPage(c, {
      title: symbol ? `${symbol} ${timeframe} chart` : "Chart",
      active: "chart",
      viewer,
      body: (
        <>
          <PageHeader
            title={symbol ? `${symbol} · ${timeframe}` : "Chart"}
            lead="Candlesticks of your stored bars, your active trendlines and your fills."
          />
          {form}
          {!last
            ? (
              <EmptyState
                title={symbol ? `No ${timeframe} bars of ${symbol} yet` : "No bars yet"}
              >
                <p>The chart draws the bars stored for you. Get some in one of three ways:</p>
                <ul>
                  <li>
                    a TradingView alert "Once Per Bar Close" to the bars webhook{" "}
                    <code>POST /api/v1/webhooks/bars</code>{" "}
                    with your webhook key (<a href="/settings#keys">Settings</a>; the message is in
                    the README, section Bars);
                  </li>
                  <li>
                    <code>
                      deno task bars:fetch --email E --account A --symbol S --timeframe T --from ISO
                    </code>{" "}
                    (Alpaca history, with your Alpaca account's keys);
                  </li>
                  <li>
                    <code>deno task bars:import --email E --symbol S --timeframe T FILE.csv</code>
                    {" "}
                    (a TradingView chart export or any <code>time,open,high,low,close,volume</code>
                    {" "}
                    CSV).
                  </li>
                </ul>
              </EmptyState>
            )
            : (
              <section class="card" aria-labelledby="chart-summary">
                <Island
                  of={Chart}
                  props={{
                    symbol: symbol!,
                    timeframe,
                    zone: viewer.zone,
                    bars: bars.map((b) => ({
                      time: seconds(b.ts),
                      open: Number(b.open),
                      high: Number(b.high),
                      low: Number(b.low),
                      close: Number(b.close),
                    })),
                    lines,
                    markers,
                  }}
                />
                <h2 id="chart-summary" class="sr-only">Summary</h2>
                <p class="chart-summary" data-chart-summary>
                  Last close <strong>{formatNumber(last.close)}</strong> at{" "}
                  <Time iso={last.ts.toISOString()} zone={viewer.zone} />
                  {" · "}
                  {bars.length} bars ·{" "}
                  <span data-trendlines={lines.length}>
                    {lines.length} active trendline{lines.length === 1 ? "" : "s"}
                  </span>
                  {" · "}
                  <span data-trades={fills.length}>
                    {fills.length} fill{fills.length === 1 ? "" : "s"}
                  </span>
                </p>
                {lines.length > 0 && (
                  <ul class="chart-lines">
                    {lines.map((l) => (
                      <li key={l.id} data-trendline={l.id}>
                        <span class={`badge ${l.kind}`}>{l.kind}</span> from{" "}
                        {formatNumber(l.from.value.toFixed(4))} to{" "}
                        {formatNumber(l.to.value.toFixed(4))} at the last bar
                      </li>
                    ))}
                  </ul>
                )}
                {fills.length > 0 && (
                  <div class="table-wrap">
                    <table class="table chart-fills">
                      <caption>
                        {fills.length > CHART_FILLS_LISTED
                          ? `The newest ${CHART_FILLS_LISTED} fills`
                          : "Fills"}
                      </caption>
                      <thead>
                        <tr>
                          <th scope="col">Filled</th>
                          <th scope="col">Side</th>
                          <th scope="col" class="num">Qty</th>
                          <th scope="col" class="num">Price</th>
                          <th scope="col">Account</th>
                        </tr>
                      </thead>
                      <tbody>
                        {fills.slice(-CHART_FILLS_LISTED).reverse().map((f, i) => (
                          <tr key={`${f.order_id}:${i}`} data-fill={f.order_id}>
                            <td>
                              <a href={`/orders/${f.order_id}`}>
                                <Time
                                  iso={new Date(f.filled_at).toISOString()}
                                  zone={viewer.zone}
                                />
                              </a>
                            </td>
                            <td class={f.side === "buy" ? "up" : "down"}>{f.side}</td>
                            <td class="num">{formatNumber(f.quantity)}</td>
                            <td class="num">{formatNumber(f.price)}</td>
                            <td>{f.account}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                )}
              </section>
            )}
        </>
      ),
    });
  }),
);
