/**
 * The chart: candlesticks of a symbol's stored bars, the trader's active trendlines drawn from
 * their first anchor to the last bar, and their fills as arrows (buy below the bar, sell above).
 * Times arrive as UTC epoch seconds and are shown in the viewer's zone. A new trendline for this
 * symbol and timeframe, pushed live, offers a reload.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import {
  CandlestickSeries,
  createChart,
  createSeriesMarkers,
  type IChartApi,
  LineSeries,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { liveConnection } from "./_client/live.ts";

/** One bar: open time in epoch seconds, prices as numbers. */
export interface ChartBar {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
}

/** A line between two points (epoch seconds). */
export interface ChartLine {
  id: string;
  kind: "support" | "resistance";
  from: { time: number; value: number };
  to: { time: number; value: number };
}

/** A fill, placed on the bar it happened in. */
export interface ChartMarker {
  time: number;
  side: "buy" | "sell";
  text: string;
}

/** Props. */
export interface ChartProps {
  symbol: string;
  timeframe: string;
  zone: string;
  bars: ChartBar[];
  lines: ChartLine[];
  markers: ChartMarker[];
  [key: string]: unknown;
}

/** How many of the newest bars the chart opens on. */
const VISIBLE_BARS = 120;

/** The colours of static/app.css (a canvas cannot read CSS variables). */
const COLORS = {
  bg: "#161b22",
  text: "#8b96a5",
  grid: "#2a3241",
  up: "#3fb950",
  down: "#f85149",
  accent: "#4c9aff",
  warn: "#d29922",
};

/** The offset of `zone` from UTC at `epochSeconds`, in seconds. */
export function zoneOffsetSeconds(zone: string, epochSeconds: number): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
  }).formatToParts(new Date(epochSeconds * 1000));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const local = Date.UTC(
    get("year"),
    get("month") - 1,
    get("day"),
    get("hour"),
    get("minute"),
    get("second"),
  );
  return Math.round(local / 1000) - epochSeconds;
}

export default function Chart({ symbol, timeframe, zone, bars, lines, markers }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const [newLine, setNewLine] = useState(false);

  useEffect(() => {
    if (!box.current || bars.length === 0) return;
    // lightweight-charts shows UTC; shifting each time by the zone's offset shows local time.
    const shift = (t: number) => (t + zoneOffsetSeconds(zone, t)) as UTCTimestamp;
    const chart: IChartApi = createChart(box.current, {
      autoSize: true,
      layout: { background: { color: COLORS.bg }, textColor: COLORS.text },
      grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
      rightPriceScale: { borderColor: COLORS.grid },
      timeScale: {
        borderColor: COLORS.grid,
        timeVisible: !timeframe.endsWith("d") && !timeframe.endsWith("w"),
        // Room for the marker text of a fill on the last bar.
        rightOffset: 6,
      },
      crosshair: { mode: 0 },
    });
    const candles = chart.addSeries(CandlestickSeries, {
      upColor: COLORS.up,
      downColor: COLORS.down,
      borderVisible: false,
      wickUpColor: COLORS.up,
      wickDownColor: COLORS.down,
    });
    candles.setData(bars.map((b) => ({ ...b, time: shift(b.time) })));
    for (const line of lines) {
      const series = chart.addSeries(LineSeries, {
        color: line.kind === "support" ? COLORS.accent : COLORS.warn,
        lineWidth: 2,
        priceLineVisible: false,
        lastValueVisible: false,
        crosshairMarkerVisible: false,
      });
      const points = [line.from, line.to].map((p) => ({ time: shift(p.time), value: p.value }));
      series.setData(points[0]!.time === points[1]!.time ? [points[1]!] : points);
    }
    createSeriesMarkers(
      candles,
      markers.map((m): SeriesMarker<Time> => ({
        time: shift(m.time),
        position: m.side === "buy" ? "belowBar" : "aboveBar",
        shape: m.side === "buy" ? "arrowUp" : "arrowDown",
        color: m.side === "buy" ? COLORS.up : COLORS.down,
        text: m.text,
      })),
    );
    // The newest bars, wide enough to tell fills apart; the older ones are a scroll away.
    if (bars.length > VISIBLE_BARS) {
      chart.timeScale().setVisibleLogicalRange({
        from: bars.length - VISIBLE_BARS,
        to: bars.length - 1 + 6,
      });
    } else chart.timeScale().fitContent();
    box.current.dataset.rendered = String(bars.length);
    return () => chart.remove();
  }, []);

  useEffect(() => {
    return liveConnection().listen({
      event: (event) => {
        if (
          event.channel === "trendlines" && event.type === "trendline.new" &&
          event.data.symbol === symbol && event.data.timeframe === timeframe
        ) setNewLine(true);
      },
    });
  }, []);

  return (
    <div class="chart">
      {newLine && (
        <p class="banner ok" role="status" data-new-trendline>
          New trendline for {symbol} {timeframe} —{" "}
          <a href={location.pathname + location.search}>reload</a> to see it.
        </p>
      )}
      <div
        ref={box}
        class="chart-box"
        role="img"
        aria-label={`Candlestick chart of ${symbol}, ${timeframe}, ${bars.length} bars`}
        data-chart={`${symbol}:${timeframe}`}
      />
    </div>
  );
}
