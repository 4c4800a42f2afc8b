/**
 * The scanner: on each cron tick of a timeframe (one instance wins the tick's lease), it reads
 * the bars of every watched symbol, detects trendlines, stores new ones with their history,
 * retires lines that are no longer found, and evaluates touch, break and retest alerts on the
 * bars that arrived since a line was last evaluated. A `bar` message evaluates alerts for one
 * symbol at once, without waiting for the next tick.
 */
import { readBars } from "../db/bars.ts";
import type { Db } from "../db/client.ts";
import { claimTick } from "../db/leases.ts";
import {
  appendTrendlineEvent,
  insertTrendline,
  listTrendlines,
  markTrendline,
  readScanSettings,
  refreshTrendline,
  type StoredTrendline,
  watchesOn,
} from "../db/trendlines.ts";
import type { Clock } from "../lib/clock.ts";
import type { EventBus } from "../lib/events.ts";
import { uuidv7 } from "../lib/ids.ts";
import type { ScanTimeframe } from "../lib/schedule.ts";
import {
  DEFAULT_SCAN_SETTINGS,
  detectTrendlines,
  evaluateBar,
  lineValue,
  type ScanSettings,
  tolerances,
} from "../lib/trendlines.ts";
import type { Behavior, Reply } from "./actor.ts";

/** Counts of one scan. */
export interface ScanSummary {
  symbols: number;
  created: number;
  alerts: number;
  retired: number;
}

/** What the scanner reports about itself. */
export interface ScannerStatus {
  ticksScanned: number;
  /** Ticks another instance claimed first. */
  ticksSkipped: number;
  lastScanAt: string | null;
}

/** What the scanner can be told. */
export type ScannerCommand =
  | { type: "tick"; timeframe: ScanTimeframe; at: Date }
  | {
    type: "scan";
    timeframe: ScanTimeframe;
    userId?: string;
    symbol?: string;
    reply?: Reply<ScanSummary>;
  }
  | { type: "bar"; userId: string; symbol: string; timeframe: ScanTimeframe }
  | { type: "status"; reply: Reply<ScannerStatus> };

/** What the scanner needs. */
export interface ScannerDeps {
  db: Db;
  clock: Clock;
  bus: EventBus;
  /** This instance, as the owner of the tick leases it wins. */
  instanceId: string;
  /** Bars read per symbol (default 5,000). */
  barsPerScan?: number;
}

interface State {
  ticksScanned: number;
  ticksSkipped: number;
  lastScanAt: string | null;
}

type Key = { userId: string; symbol: string; timeframe: ScanTimeframe };

/** The scanner behaviour; `init` builds fresh state on every (re)start. */
export function scannerBehavior(deps: ScannerDeps): Behavior<State, ScannerCommand> {
  const barsPerScan = deps.barsPerScan ?? 5_000;
  return {
    init: () => ({ ticksScanned: 0, ticksSkipped: 0, lastScanAt: null }),

    async receive(state, msg, ctx) {
      switch (msg.type) {
        case "tick": {
          const won = await claimTick(deps.db, `scan:${msg.timeframe}`, msg.at, deps.instanceId);
          if (!won) {
            ctx.log.debug("Scan tick claimed elsewhere", { timeframe: msg.timeframe });
            return { ...state, ticksSkipped: state.ticksSkipped + 1 };
          }
          await scanAll(msg.timeframe, {}, msg.at);
          return {
            ...state,
            ticksScanned: state.ticksScanned + 1,
            lastScanAt: new Date(deps.clock.now()).toISOString(),
          };
        }
        case "scan": {
          try {
            const summary = await scanAll(msg.timeframe, msg, null);
            msg.reply?.ok(summary);
          } catch (error) {
            msg.reply?.fail(error);
            throw error;
          }
          return { ...state, lastScanAt: new Date(deps.clock.now()).toISOString() };
        }
        case "bar": {
          const settings = await settingsOf(msg.userId);
          const bars = await readBars(deps.db, msg, { limit: 500 });
          await evaluateAlerts(msg, bars, settings);
          return state;
        }
        case "status":
          msg.reply.ok({ ...state });
          return state;
        default: {
          const never: never = msg;
          throw new Error(`Cannot handle scanner message ${JSON.stringify(never)}`);
        }
      }
    },
  };

  async function settingsOf(userId: string): Promise<ScanSettings> {
    return { ...DEFAULT_SCAN_SETTINGS, ...await readScanSettings(deps.db, userId) };
  }

  function publish(
    type: "trendline.new" | "trendline.alert" | "trendline.retired" | "scan.complete",
    userId: string,
    data: Record<string, unknown>,
  ) {
    deps.bus.publish({ type, userId, at: new Date(deps.clock.now()).toISOString(), data });
  }

  /** Scans every watched symbol of `timeframe`; one `scan.complete` per trader. */
  async function scanAll(
    timeframe: ScanTimeframe,
    filter: { userId?: string; symbol?: string },
    tickAt: Date | null,
  ): Promise<ScanSummary> {
    const entries = await watchesOn(deps.db, timeframe, filter);
    const total: ScanSummary = { symbols: 0, created: 0, alerts: 0, retired: 0 };
    const byUser = new Map<string, ScanSummary>();
    for (const entry of entries) {
      const s = await scanOne(entry);
      const u = byUser.get(entry.userId) ?? { symbols: 0, created: 0, alerts: 0, retired: 0 };
      for (const k of ["symbols", "created", "alerts", "retired"] as const) {
        u[k] += s[k];
        total[k] += s[k];
      }
      byUser.set(entry.userId, u);
    }
    for (const [userId, summary] of byUser) {
      publish("scan.complete", userId, {
        timeframe,
        tick_at: tickAt?.toISOString() ?? null,
        ...summary,
      });
    }
    return total;
  }

  async function scanOne(key: Key): Promise<ScanSummary> {
    const settings = await settingsOf(key.userId);
    const bars = await readBars(deps.db, key, { limit: barsPerScan });
    const summary: ScanSummary = { symbols: 1, created: 0, alerts: 0, retired: 0 };
    if (bars.length === 0) return summary;
    // Alerts first, on the bars since each stored line was last evaluated.
    const { alerts, broken } = await evaluateAlerts(key, bars, settings);
    summary.alerts = alerts;
    const now = new Date(deps.clock.now());
    const lastBarTs = bars[bars.length - 1]!.ts;
    const found = detectTrendlines(bars, settings);
    const active = await listTrendlines(deps.db, key.userId, { ...key, status: "active" });
    const byAnchors = new Map(active.map((l) => [anchorsOf(l), l]));
    const seen = new Set<string>();
    for (const line of found) {
      const anchors = anchorsOf(line);
      seen.add(anchors);
      const stored = byAnchors.get(anchors);
      if (stored) {
        await refreshTrendline(deps.db, stored.id, line, now);
        continue;
      }
      const inserted = await insertTrendline(
        deps.db,
        { id: uuidv7(deps.clock.now()), ...key },
        line,
        { at: now, lastBarTs },
      );
      if (!inserted) continue; // found before, and broken or retired since
      summary.created++;
      publish("trendline.new", key.userId, { ...lineData(inserted), touches: line.touches });
    }
    for (const line of active) {
      if (seen.has(anchorsOf(line)) || broken.has(line.id)) continue;
      // No longer among the best lines: retired, with its history kept.
      await deps.db.transaction(async (tx) => {
        await markTrendline(tx, line.id, { status: "retired", at: now });
        await appendTrendlineEvent(tx, line, "retired", { at: now });
      });
      summary.retired++;
      publish("trendline.retired", key.userId, lineData(line));
    }
    return summary;
  }

  /** Evaluates active lines, and broken ones not yet retested, on bars they have not seen. */
  async function evaluateAlerts(
    key: Key,
    bars: Awaited<ReturnType<typeof readBars>>,
    settings: ScanSettings,
  ) {
    let alerts = 0;
    const broken = new Set<string>();
    if (bars.length === 0) return { alerts, broken };
    const tol = tolerances(bars, settings);
    const lines = [
      ...await listTrendlines(deps.db, key.userId, { ...key, status: "active" }),
      ...(await listTrendlines(deps.db, key.userId, { ...key, status: "broken" }))
        .filter((l) => l.retestedAt === null),
    ];
    const now = new Date(deps.clock.now());
    const lastBarTs = bars[bars.length - 1]!.ts;
    for (const line of lines) {
      let status = line.status as "active" | "broken";
      let retested = false;
      // A touch alerts when price comes to the line, not again on each bar it stays there.
      let touching = false;
      for (let i = 0; i < bars.length && !retested; i++) {
        const bar = bars[i]!;
        const seen = line.lastBarTs !== null && bar.ts <= line.lastBarTs;
        if (seen && bars[i + 1] && bars[i + 1]!.ts <= line.lastBarTs!) continue;
        const alert = evaluateBar({ ...line, status }, bar, tol[i]!);
        const wasTouching = touching;
        touching = alert === "touch";
        if (seen || !alert || (alert === "touch" && wasTouching)) continue;
        const kind = alert === "touch" ? "touched" : alert === "break" ? "broken" : "retested";
        await deps.db.transaction(async (tx) => {
          if (alert === "break") {
            status = "broken";
            broken.add(line.id);
            await markTrendline(tx, line.id, { status, at: now, lastBarTs: bar.ts });
          } else if (alert === "retest") {
            retested = true;
            await markTrendline(tx, line.id, { status, at: now, lastBarTs: bar.ts, retested });
          }
          await appendTrendlineEvent(tx, line, kind, { at: now, barTs: bar.ts, price: bar.close });
        });
        alerts++;
        publish("trendline.alert", key.userId, {
          ...lineData(line),
          alert,
          bar_ts: bar.ts.toISOString(),
          close: bar.close,
          line_value: lineValue(line, bar.ts),
        });
      }
      if (!retested) await markTrendline(deps.db, line.id, { status, at: now, lastBarTs });
    }
    return { alerts, broken };
  }
}

function anchorsOf(line: { kind: string; t1: Date; t2: Date }): string {
  return `${line.kind}|${line.t1.getTime()}|${line.t2.getTime()}`;
}

function lineData(line: StoredTrendline): Record<string, unknown> {
  return {
    trendline_id: line.id,
    symbol: line.symbol,
    timeframe: line.timeframe,
    kind: line.kind,
    t1: line.t1.toISOString(),
    p1: line.p1,
    t2: line.t2.toISOString(),
    p2: line.p2,
    slope_per_hour: line.slopePerHour,
  };
}
