/**
 * The hot path under load: TradingView webhooks through the whole runtime (`start()` from
 * main.ts) on a real PostgreSQL with the paper broker, against the hot-path floor DESIGN.md
 * names — a bare `Deno.serve` doing one INSERT over postgres.js (`floor-insert`) — measured in
 * the same run by the same open-loop client, both servers up together.
 *
 * Measured, at fixed open-loop rates (REPS interleaved runs each, medians shown) and at the
 * highest lossless rate:
 * - acknowledged: the load client's latency, scheduled send → 202 read (no coordinated omission);
 * - fill stamped: `signals.filled_at` (the server's clock when the executor got the paper fill)
 *   − the request's scheduled send (the client's clock; one machine, so one wall clock,
 *   calibrated before each run). The transaction that journals the fill commits right after
 *   that stamp, so "fill journaled" is this plus one commit, which no column records;
 * - the split of that: send → `received_at` (HTTP in), `received_at` → `dispatched_at` (accept
 *   commit, ingest, executor mailbox wait), `dispatched_at` → `filled_at` (the executor's work);
 * - unfilled: signals on disk that never reached `filled` within DRAIN_LIMIT_MS (must be 0), and
 *   how long after the load's last answer the last of them finished (the backlog's drain).
 *
 * Beside them, `floor-writes` (a reference, not the issue's floor): a bare `Deno.serve` making the
 * app's durable writes for each paper fill in the plainest way, to tell what the writes alone cost
 * from what the app adds to them.
 *
 * Every request is a distinct signal (unique `id`) with a `price`, so the paper broker fills it
 * at once; they go round-robin to ACCOUNTS traders, each with its own paper account (one
 * executor per account, serial by design) and its own ticker, buying and selling in turn.
 *
 *     deno run -A bench/pipeline.ts
 */
import {
  findMaxRate,
  type MaxRateResult,
  type MaxRateStep,
  type OpenLoopResult,
  percentiles,
  type RequestSpec,
  runOpenLoop,
} from "./_load.ts";
import { cpuBetween, type CpuSample, type CpuUse, processCpuSeconds, sampleCpu } from "./_cpu.ts";
import {
  latencyColumns,
  median,
  ms,
  percent,
  rate,
  ratio,
  writeLine,
  writeTable,
} from "./_report.ts";
import { type BenchServer, spawnServer } from "./_spawn.ts";
import type { Db } from "../db/client.ts";
import { openPostgres } from "../db/postgres.ts";
import { insertTrader, type TraderFixture } from "../tests/_fixtures.ts";

const WEBHOOK_PATH = "/api/v1/webhooks/tradingview";
/** Traders, each with one paper account (one executor) and one ticker. */
const ACCOUNTS = 8;
const TICKERS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD"] as const;
/** Fixed open-loop rates, each run REPS times for its RUN_MS, interleaved floor / app. */
const RATES = [100, 1000] as const;
const RUN_MS = [4000, 2500] as const;
/** Five, not three: the floor's own p99 at 1,000/s moves from 7 to 13 ms run to run, and a median of
 * three let one noisy run move the ratios by half. */
const REPS = 5;
const WARMUP = { ratePerSecond: 200, durationMs: 1500 };
/** How long the executors may take to finish every accepted signal after a run. */
const DRAIN_LIMIT_MS = 30_000;
const DRAIN_POLL_MS = 100;
/** The issue's targets (reported, not asserted). */
const TARGET = { ackP99: 1.5, fillP99: 3, maxRate: 0.5 } as const;
/** The app's settings for this bench: no webhook or API limit in the way, a quiet log. */
const APP_CONFIG = {
  WEBHOOK_RATE_LIMIT_PER_MINUTE: "1000000",
  RATE_LIMIT_PER_MINUTE: "1000000",
  LOG_LEVEL: "warning",
};

function progress(text: string) {
  Deno.stderr.writeSync(new TextEncoder().encode(`  · ${text}\n`));
}

function ensureAlive(server: BenchServer) {
  if (server.exited) {
    throw new Error(
      `The "${server.mode}" bench server died during the run; its output:\n${server.output()}`,
    );
  }
}

/** `Date.now() − performance.now()`, to well under a millisecond (taken at a Date.now tick). */
function wallOffset(): number {
  const first = Date.now();
  let now = first;
  while (now === first) now = Date.now();
  return now - performance.now();
}

/** Signals to send: request i of a run is a distinct signal tagged `<tag>:<i>`. */
class SignalFeed {
  /** Every signal sent so far, so that each account alternates buy / sell across runs. */
  #sequence = 0;
  #base = 0;
  tag = "";
  /** performance.now() at the actual send of request i of the current run. */
  sentAt: number[] = [];
  #runs = 0;

  constructor(private readonly url: string, private readonly traders: TraderFixture[]) {}

  /** Starts a new run; returns its tag. */
  next(prefix: string): string {
    this.#sequence += this.sentAt.length;
    this.#base = this.#sequence;
    this.sentAt = [];
    this.tag = `${prefix}${++this.#runs}`;
    return this.tag;
  }

  /** The body of request i: the same for the floor (which stores it) and the app. */
  body(i: number): string {
    const n = this.#base + i;
    const trader = this.traders[n % this.traders.length]!;
    return JSON.stringify({
      key: trader.key,
      ticker: TICKERS[n % this.traders.length],
      action: Math.floor(n / this.traders.length) % 2 === 0 ? "buy" : "sell",
      quantity: 1,
      price: (100 + (n % 100) / 100).toFixed(2),
      id: `${this.tag}:${i}`,
    });
  }

  request = (i: number): RequestSpec => {
    this.sentAt[i] = performance.now();
    return {
      url: this.url,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: this.body(i),
    };
  };
}

/**
 * CPU seconds of every PostgreSQL backend serving `database` (its process title names it), by
 * pid; empty off Linux. Backends of other databases (other people's tests) are left out.
 */
function pgBackendSeconds(database: string | undefined): Map<number, number> {
  const found = new Map<number, number>();
  if (!database) return found;
  const needle = ` ${database} `;
  try {
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      let title: string;
      try {
        title = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      } catch {
        continue; // gone, or not ours to read
      }
      if (!title.startsWith("postgres:") || !title.includes(needle)) continue;
      const seconds = processCpuSeconds(Number(entry.name));
      if (Number.isFinite(seconds)) found.set(Number(entry.name), seconds);
    }
  } catch {
    // no /proc
  }
  return found;
}

/** A CPU sample of a server, the machine, and the PostgreSQL backends of its database. */
interface Sample {
  cpu: CpuSample;
  pg: Map<number, number>;
}

/** CPU used between two samples: `pg` in cores, `other` = the rest minus those backends. */
interface Use extends CpuUse {
  pg: number;
  pgSeconds: number;
  other: number;
  seconds: number;
}

function databaseName(server: BenchServer): string | undefined {
  return server.databaseUrl ? new URL(server.databaseUrl).pathname.slice(1) : undefined;
}

function sample(server: BenchServer): Sample {
  return { cpu: sampleCpu(server.pid), pg: pgBackendSeconds(databaseName(server)) };
}

function between(from: Sample, to: Sample): Use {
  const use = cpuBetween(from.cpu, to.cpu);
  const seconds = (to.cpu.at - from.cpu.at) / 1000;
  let pgSeconds = 0;
  for (const [pid, s] of to.pg) pgSeconds += s - (from.pg.get(pid) ?? 0);
  const pg = pgSeconds / seconds;
  return { ...use, pg, pgSeconds, other: Math.max(0, use.rest - pg), seconds };
}

/** One run's signals as the database has them, joined to when the client sent them. */
interface FillStats {
  onDisk: number;
  filled: number;
  /** Status → count, for the ones not filled. */
  unfilled: Record<string, number>;
  /** scheduled send → filled_at. */
  fill: ReturnType<typeof percentiles>;
  /** scheduled send → received_at; received_at → dispatched_at; dispatched_at → filled_at. */
  ingress: ReturnType<typeof percentiles>;
  queued: ReturnType<typeof percentiles>;
  execute: ReturnType<typeof percentiles>;
  /** Last finished_at − the load's last answer (ms, ≥ 0); NaN when something never finished. */
  drainMs: number;
  /** Signals filled per second, first received_at → last finished_at (the executors' pace). */
  fillRate: number;
  /** The sends were dated from their actual send (requests were dropped, so no schedule). */
  fromActualSend: boolean;
}

interface SignalTimes {
  i: number;
  status: string;
  received: number;
  dispatched: number | null;
  filled: number | null;
  finished: number | null;
}

async function signalTimes(db: Db, tag: string): Promise<SignalTimes[]> {
  return await db.query<SignalTimes & Record<string, unknown>>(
    `SELECT split_part(sender_id, ':', 2)::int AS i, status,
            (extract(epoch FROM received_at) * 1000)::float8 AS received,
            (extract(epoch FROM dispatched_at) * 1000)::float8 AS dispatched,
            (extract(epoch FROM filled_at) * 1000)::float8 AS filled,
            (extract(epoch FROM finished_at) * 1000)::float8 AS finished
     FROM signals WHERE sender_id LIKE $1`,
    [`${tag}:%`],
  );
}

/** Waits (bounded) until no signal is unfinished; returns how many still are. */
async function waitForDrain(db: Db, limitMs = DRAIN_LIMIT_MS): Promise<number> {
  const deadline = performance.now() + limitMs;
  for (;;) {
    const [row] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM signals WHERE status IN ('accepted', 'executing', 'placed')`,
    );
    if (row!.n === 0 || performance.now() >= deadline) return row!.n;
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
}

/**
 * Joins a run's signals to their sends. Request i was scheduled at `t0 + i / rate`; t0 is
 * estimated as the least `sentAt[i] − i / rate` (a send is never early), which holds while no
 * request was dropped (the index is then the schedule's).
 */
function fillStats(
  rows: SignalTimes[],
  feed: { sentAt: number[] },
  result: OpenLoopResult,
  offset: number,
  endWall: number,
): FillStats {
  const interval = 1000 / result.targetRate;
  const fromActualSend = result.dropped > 0;
  let t0 = Infinity;
  feed.sentAt.forEach((at, i) => t0 = Math.min(t0, at - i * interval));
  const sendWall = (i: number) => (fromActualSend ? feed.sentAt[i]! : t0 + i * interval) + offset;
  const fill: number[] = [];
  const ingress: number[] = [];
  const queued: number[] = [];
  const execute: number[] = [];
  const unfilled: Record<string, number> = {};
  let lastFinish = -Infinity;
  let firstReceived = Infinity;
  let unfinished = false;
  for (const r of rows) {
    firstReceived = Math.min(firstReceived, r.received);
    if (r.finished === null) unfinished = true;
    else lastFinish = Math.max(lastFinish, r.finished);
    if (feed.sentAt[r.i] === undefined) continue;
    ingress.push(r.received - sendWall(r.i));
    if (r.status !== "filled" || r.filled === null) {
      unfilled[r.status] = (unfilled[r.status] ?? 0) + 1;
      continue;
    }
    fill.push(r.filled - sendWall(r.i));
    if (r.dispatched !== null) {
      queued.push(r.dispatched - r.received);
      execute.push(r.filled - r.dispatched);
    }
  }
  return {
    onDisk: rows.length,
    filled: fill.length,
    unfilled,
    fill: percentiles(fill),
    ingress: percentiles(ingress),
    queued: percentiles(queued),
    execute: percentiles(execute),
    drainMs: unfinished ? NaN : Math.max(0, lastFinish - endWall),
    fillRate: (fill.length * 1000) / (lastFinish - firstReceived),
    fromActualSend,
  };
}

/** One fixed-rate run: the client's result, the CPU used until the backlog drained, the fills. */
interface Run {
  result: OpenLoopResult;
  /** From the run's start until its backlog drained. */
  cpu: Use;
  fills?: FillStats;
}

interface Target {
  label: string;
  server: BenchServer;
  feed: SignalFeed;
  /** Which statuses are a success: the app must answer 202 (a new signal), nothing else. */
  isOk?: (status: number) => boolean;
  /** The app's database, to follow its signals to the fill. */
  db?: Db;
}

async function measure(target: Target, ratePerSecond: number, durationMs: number): Promise<Run> {
  const { server, feed, db } = target;
  const tag = feed.next("r");
  const offset = wallOffset();
  const before = sample(server);
  const result = await runOpenLoop({
    request: feed.request,
    isOk: target.isOk,
    ratePerSecond,
    durationMs,
  });
  const endWall = Date.now();
  ensureAlive(server);
  if (!db) return { result, cpu: between(before, sample(server)) };
  const pending = await waitForDrain(db);
  const cpu = between(before, sample(server));
  const fills = fillStats(await signalTimes(db, tag), feed, result, offset, endWall);
  if (pending > 0) progress(`${target.label}: ${pending} signals unfinished after the drain limit`);
  return { result, cpu, fills };
}

/** Server and other CPU per request (µs), over a run including its drain. */
function cpuMicros(run: Run): { server: number; pg: number } {
  const n = Math.max(1, run.result.latencyMs.count);
  return {
    server: (run.cpu.serverSeconds / n) * 1e6,
    pg: (run.cpu.pgSeconds / n) * 1e6,
  };
}

const RUN_HEADER = [
  "server",
  "rate/s",
  "ok/sched",
  "ack p50",
  "p90",
  "p99",
  "p99 range",
  "max",
  "fill p50",
  "fill p99",
  "fill max",
  "unfilled",
  "drain s",
  "srv µs",
  "pg µs",
  "other",
  "lag p99",
];

function row(label: string, target: number, runs: Run[]): string[] {
  const of = (f: (r: OpenLoopResult) => number) => runs.map((run) => f(run.result));
  const fills = runs.flatMap((run) => run.fills ? [run.fills] : []);
  const fillOf = (f: (s: FillStats) => number) => fills.map(f);
  const unfilled = fills.reduce(
    (sum, s) => sum + Object.values(s.unfilled).reduce((a, b) => a + b, 0),
    0,
  );
  const drains = fillOf((s) => s.drainMs);
  return [
    ...latencyColumns(label, target, runs.map((run) => run.result)),
    fills.length ? ms(median(fillOf((s) => s.fill.p50))) : "",
    fills.length ? ms(median(fillOf((s) => s.fill.p99))) : "",
    fills.length ? ms(Math.max(...fillOf((s) => s.fill.max))) : "",
    fills.length ? String(unfilled) : "",
    fills.length
      ? (drains.some((d) => !Number.isFinite(d))
        ? `>${DRAIN_LIMIT_MS / 1000}`
        : (Math.max(...drains) / 1000).toFixed(2))
      : "",
    median(runs.map((r) => cpuMicros(r).server)).toFixed(0),
    median(runs.map((r) => cpuMicros(r).pg)).toFixed(0),
    percent(median(runs.map((r) => r.cpu.other))),
    ms(median(of((r) => r.sendLagMs.p99))),
  ];
}

function p99(runs: Run[]): number {
  return median(runs.map((r) => r.result.latencyMs.p99));
}

function fillP99(runs: Run[]): number {
  return median(runs.map((r) => r.fills?.fill.p99 ?? NaN));
}

function verdict(ok: boolean): string {
  return ok ? "PASS" : "FAIL";
}

/** A max-rate search with the CPU used by each step, and the app's signals of each step. */
interface Search {
  found: MaxRateResult;
  cpu: Map<MaxRateStep, Use>;
  /** For the app: per step, its tag and the wall time its load ended. */
  tags: Map<MaxRateStep, { tag: string; endWall: number; offset: number; sentAt: number[] }>;
}

async function search(
  target: Target,
  options: { startRate: number; budgetMs: number; restMs?: number },
): Promise<Search> {
  const { server, feed } = target;
  const cpu = new Map<MaxRateStep, Use>();
  const tags: Search["tags"] = new Map();
  let before = sample(server);
  let offset = 0;
  const found = await findMaxRate({
    request: feed.request,
    isOk: target.isOk,
    startRate: options.startRate,
    maxRate: 60_000,
    budgetMs: options.budgetMs,
    restMs: options.restMs,
    beforeStep: () => {
      feed.next("m");
      offset = wallOffset();
      before = sample(server);
    },
    afterStep: (step) => {
      cpu.set(step, between(before, sample(server)));
      tags.set(step, { tag: feed.tag, endWall: Date.now(), offset, sentAt: feed.sentAt });
    },
  });
  ensureAlive(server);
  return { found, cpu, tags };
}

function bestStep(s: Search): MaxRateStep | undefined {
  return s.found.steps.find((step) => step.result === s.found.best);
}

function firstFailure(s: Search): MaxRateStep | undefined {
  return s.found.steps.find((step) => step.rate === s.found.failedAt);
}

function whyFailed(step: MaxRateStep | undefined): string {
  if (!step) return "no failure within the time budget";
  const r = step.result;
  const parts: string[] = [];
  if (r.errors > 0) parts.push(`${r.errors} errors (${r.timeouts} timeouts, ${r.dropped} dropped)`);
  if (r.ok + r.errors < r.scheduled) {
    const other = Object.entries(r.statuses).filter(([s]) => s !== "202" || r.ok === 0)
      .map(([s, n]) => `${n}×${s}`).join(" ");
    parts.push(`${r.scheduled - r.ok - r.errors} not ok${other ? ` (${other})` : ""}`);
  }
  if (r.achievedRate < 0.95 * step.rate) parts.push(`achieved ${rate(r.achievedRate)}/s`);
  return parts.join(", ") || "not lossless";
}

const SEARCH_HEADER = [
  "server",
  "max rate/s",
  "ack p99 there",
  "srv CPU",
  "pg CPU",
  "other",
  "failed at/s",
  "srv CPU",
  "pg CPU",
  "steps",
  "failed by",
];

function searchRow(label: string, s: Search): string[] {
  const best = bestStep(s);
  const failed = firstFailure(s);
  return [
    label,
    rate(s.found.maxRate),
    best ? ms(best.result.latencyMs.p99) : "–",
    percent(best && s.cpu.get(best)?.server),
    percent(best && s.cpu.get(best)?.pg),
    percent(best && s.cpu.get(best)?.other),
    failed ? rate(failed.rate) : "–",
    percent(failed && s.cpu.get(failed)?.server),
    percent(failed && s.cpu.get(failed)?.pg),
    `${s.found.steps.length} in ${(s.found.elapsedMs / 1000).toFixed(1)} s`,
    whyFailed(failed),
  ];
}

/** Runs the bench and writes its tables. */
export async function bench(): Promise<void> {
  const servers: BenchServer[] = [];
  let db: Db | undefined;
  let writesDb: Db | undefined;
  try {
    const spawned = performance.now();
    const floorServer = await spawnServer("floor-insert");
    servers.push(floorServer);
    const appServer = await spawnServer("app", { postgres: true, appConfig: APP_CONFIG });
    servers.push(appServer);
    const writesServer = await spawnServer("floor-writes");
    servers.push(writesServer);
    progress(
      `floor-insert, floor-writes and app (postgres) up in ${ms(performance.now() - spawned)} ms`,
    );
    if (!appServer.databaseUrl || !writesServer.databaseUrl) {
      throw new Error("The app and floor-writes bench servers must have a database URL");
    }
    writesDb = openPostgres(writesServer.databaseUrl, { poolSize: 2 });

    db = openPostgres(appServer.databaseUrl, { poolSize: 2 });
    const traders: TraderFixture[] = [];
    for (let i = 0; i < ACCOUNTS; i++) {
      traders.push(await insertTrader(db, { email: `bench-${i}@example.com` }));
    }

    const floor: Target = {
      label: "floor-insert",
      server: floorServer,
      feed: new SignalFeed(`${floorServer.url}/hook`, traders),
    };
    const app: Target = {
      label: "app webhook",
      server: appServer,
      feed: new SignalFeed(`${appServer.url}${WEBHOOK_PATH}`, traders),
      isOk: (status) => status === 202,
      db,
    };
    const writes: Target = {
      label: "floor-writes",
      server: writesServer,
      feed: new SignalFeed(`${writesServer.url}/hook`, traders),
      isOk: (status) => status === 202,
      db: writesDb,
    };
    const targets = [floor, writes, app];

    // Warm each (JIT, connections, the executors start on their first signal), then run each
    // rate REPS times, interleaved; a backlog drains before the next run starts.
    for (const t of targets) await measure(t, WARMUP.ratePerSecond, WARMUP.durationMs);
    const runs = new Map(targets.map((t) => [t.label, RATES.map((): Run[] => [])]));
    for (let rep = 0; rep < REPS; rep++) {
      for (const [i, r] of RATES.entries()) {
        for (const t of targets) runs.get(t.label)![i]!.push(await measure(t, r, RUN_MS[i]!));
      }
      progress(`fixed rates: repetition ${rep + 1}/${REPS} done`);
    }

    progress("searching the max rates");
    const floorMax = await search(floor, { startRate: 2000, budgetMs: 15_000 });
    const writesMax = await search(writes, { startRate: 600, budgetMs: 15_000, restMs: 1000 });
    await waitForDrain(writesDb); // its fills, not awaited by its answers, before the app's turn
    const appMax = await search(app, { startRate: 300, budgetMs: 20_000, restMs: 1000 });
    const pendingAfterSearch = await waitForDrain(db);
    const stepFills = new Map<MaxRateStep, FillStats>();
    for (const step of [bestStep(appMax), firstFailure(appMax)]) {
      const info = step && appMax.tags.get(step);
      if (!step || !info) continue;
      stepFills.set(
        step,
        fillStats(await signalTimes(db, info.tag), info, step.result, info.offset, info.endWall),
      );
    }

    // Report.
    const floorRuns = runs.get(floor.label)!;
    const writesRuns = runs.get(writes.label)!;
    const appRuns = runs.get(app.label)!;
    writeLine(
      `POST ${WEBHOOK_PATH} — full runtime on PostgreSQL, paper broker (app) vs bare Deno.serve + one INSERT (floor-insert)`,
    );
    writeLine(
      `  open loop; median of ${REPS} interleaved runs per rate (${
        RATES.map((r, i) => `${rate(r)}/s for ${RUN_MS[i]! / 1000} s`).join(", ")
      }); ms;`,
    );
    writeLine(
      `  ${ACCOUNTS} traders, one paper account (= one executor) and one ticker each, signals round-robin,`,
    );
    writeLine(
      "  each a distinct alert (unique id) with a price, buy and sell in turn per account;",
    );
    writeLine("  ack = client: scheduled send → 202 read (floor: → 200 after its INSERT);");
    writeLine(
      "  floor-writes = a reference, not the issue's floor: bare Deno.serve making the app's durable",
    );
    writeLine(
      "    writes per paper fill the plainest way (accept statement, 202, then the fill statement;",
    );
    writeLine(
      "    no auth, validation, risk, batching or actors) into the app's schema (bench/_server.ts);",
    );
    writeLine(
      "  fill = signals.filled_at (server clock, stamped when the executor gets the paper fill; the",
    );
    writeLine(
      "    transaction journaling it commits right after, ~10 statements, not included) − scheduled",
    );
    writeLine("    send (client clock; same machine, calibrated per run);");
    writeLine(
      `  unfilled = signals of the run on disk but not filled within ${
        DRAIN_LIMIT_MS / 1000
      } s after the load (must be 0);`,
    );
    writeLine(
      "  drain s = last signal finished − the load's last answer (the executors' backlog);",
    );
    writeLine(
      "  srv / pg µs = CPU per request of the server process (every thread) / of the PostgreSQL",
    );
    writeLine(
      "    backends serving its database, from the run's start until its backlog drained; other =",
    );
    writeLine(
      "    cores busy elsewhere meanwhile (other processes, PostgreSQL's WAL writer): high = noisy;",
    );
    writeLine("  server timestamps are whole ms (Date), so the split below is ±1 ms");
    writeTable(
      RUN_HEADER,
      RATES.flatMap((r, i) => [
        row("floor-insert", r, floorRuns[i]!),
        row("floor-writes", r, writesRuns[i]!),
        row("app webhook", r, appRuns[i]!),
      ]),
    );
    writeLine();
    writeLine(
      "  Where the app's fill time goes (median of the runs' p50 / p99, ms; fills/s = signals filled",
    );
    writeLine(
      "  per second from the run's first receipt to its last fill: the executors' pace when behind):",
    );
    writeTable(
      [
        "rate/s",
        "send→received_at",
        "received→dispatched",
        "dispatched→filled",
        "fills/s",
        "on disk/ok",
      ],
      RATES.map((r, i) => {
        const f = appRuns[i]!.flatMap((run) => run.fills ? [run.fills] : []);
        const pair = (g: (s: FillStats) => ReturnType<typeof percentiles>) =>
          `${ms(median(f.map((s) => g(s).p50)))} / ${ms(median(f.map((s) => g(s).p99)))}`;
        return [
          rate(r),
          pair((s) => s.ingress),
          pair((s) => s.queued),
          pair((s) => s.execute),
          rate(median(f.map((s) => s.fillRate))),
          `${f.reduce((a, s) => a + s.onDisk, 0)}/${
            appRuns[i]!.reduce((a, run) => a + run.result.ok, 0)
          }`,
        ];
      }),
    );
    const unfilledAll = appRuns.flat().flatMap((run) =>
      run.fills ? Object.entries(run.fills.unfilled) : []
    );
    if (unfilledAll.length > 0) {
      writeLine(
        `  unfilled by status: ${unfilledAll.map(([s, n]) => `${n}×${s}`).join(", ")}`,
      );
    }
    if (appRuns.flat().some((run) => run.fills?.fromActualSend)) {
      writeLine("  (runs that dropped requests date fills from the actual send, not the schedule)");
    }
    writeLine();

    writeLine(
      "Highest lossless rate (every answer ok — 202 for the app — and ≥ 95 % achieved; 1.5 s steps ×1.5, retried once, then bisection)",
    );
    writeTable(SEARCH_HEADER, [
      searchRow("floor-insert", floorMax),
      searchRow("floor-writes", writesMax),
      searchRow("app webhook", appMax),
    ]);
    for (
      const [label, step] of [["at the max", bestStep(appMax)], [
        "at the failed rate",
        firstFailure(appMax),
      ]] as const
    ) {
      const fills = step && stepFills.get(step);
      if (!step || !fills) continue;
      const unfilled = Object.values(fills.unfilled).reduce((a, b) => a + b, 0);
      writeLine(
        `  app ${label} (${rate(step.rate)}/s): ${fills.filled}/${fills.onDisk} filled, fill p50 ${
          ms(fills.fill.p50)
        } p99 ${ms(fills.fill.p99)} max ${ms(fills.fill.max)} ms; backlog ${
          Number.isFinite(fills.drainMs)
            ? `drained ${(fills.drainMs / 1000).toFixed(2)} s after the step's load stopped` +
              (fills.drainMs <= 1000 ? " (the executors kept up)" : " (the executors fell behind)")
            : `not drained within ${DRAIN_LIMIT_MS / 1000} s`
        }; executors' pace ${rate(fills.fillRate)} fills/s${
          unfilled ? `; ${unfilled} unfilled` : ""
        }`,
      );
    }
    if (pendingAfterSearch > 0) {
      writeLine(`  ${pendingAfterSearch} signals still unfinished after the search and the drain`);
    }
    writeLine(
      "  CPU in cores during the step: srv = the server process, pg = its database's backends, other = the rest but the client",
    );
    writeLine();

    const at = (r: number) => RATES.indexOf(r as typeof RATES[number]);
    const i1000 = at(1000);
    const ackRatio = p99(appRuns[i1000]!) / p99(floorRuns[i1000]!);
    const fillRatio = fillP99(appRuns[i1000]!) / p99(floorRuns[i1000]!);
    const maxRatio = appMax.found.maxRate / floorMax.found.maxRate;
    writeLine("Targets (issue), app ÷ floor-insert from this run:");
    writeTable(["measure", "app", "floor", "ratio", "target", "verdict"], [
      [
        "ack p99 at 1,000/s",
        ms(p99(appRuns[i1000]!)),
        ms(p99(floorRuns[i1000]!)),
        ratio(ackRatio),
        `≤ ×${TARGET.ackP99}`,
        verdict(ackRatio <= TARGET.ackP99),
      ],
      [
        "fill p99 at 1,000/s",
        ms(fillP99(appRuns[i1000]!)),
        ms(p99(floorRuns[i1000]!)),
        ratio(fillRatio),
        `≤ ×${TARGET.fillP99}`,
        verdict(fillRatio <= TARGET.fillP99),
      ],
      [
        "zero-loss max rate/s",
        rate(appMax.found.maxRate),
        rate(floorMax.found.maxRate),
        ratio(maxRatio),
        `≥ ×${TARGET.maxRate}`,
        verdict(maxRatio >= TARGET.maxRate),
      ],
    ]);
    const i100 = at(100);
    writeLine(
      `  for reference at 100/s: ack p99 ${ratio(p99(appRuns[i100]!) / p99(floorRuns[i100]!))}, ` +
        `fill p99 ${ratio(fillP99(appRuns[i100]!) / p99(floorRuns[i100]!))} of the floor's p99`,
    );
    writeLine();
    writeLine(
      "For reference (not the issue's targets), app ÷ floor-writes — the same durable writes, done plainly:",
    );
    writeTable(["measure", "app", "floor-writes", "ratio"], [
      [
        "ack p99 at 1,000/s",
        ms(p99(appRuns[i1000]!)),
        ms(p99(writesRuns[i1000]!)),
        ratio(p99(appRuns[i1000]!) / p99(writesRuns[i1000]!)),
      ],
      [
        "fill p99 at 1,000/s",
        ms(fillP99(appRuns[i1000]!)),
        ms(fillP99(writesRuns[i1000]!)),
        ratio(fillP99(appRuns[i1000]!) / fillP99(writesRuns[i1000]!)),
      ],
      [
        "zero-loss max rate/s",
        rate(appMax.found.maxRate),
        rate(writesMax.found.maxRate),
        ratio(appMax.found.maxRate / writesMax.found.maxRate),
      ],
    ]);
    const lost = appRuns.flat().reduce(
      (sum, run) =>
        sum + (run.fills
          ? Object.values(run.fills.unfilled).reduce((a, b) => a + b, 0) +
            Math.max(0, run.result.ok - run.fills.onDisk)
          : 0),
      0,
    );
    writeLine(
      `  signals lost at the fixed rates (acknowledged or on disk, never filled): ${lost} ${
        lost === 0 ? "(PASS)" : "(FAIL)"
      }`,
    );
  } finally {
    await db?.close().catch(() => {});
    await writesDb?.close().catch(() => {});
    for (const server of servers) await server.stop();
  }
}

if (import.meta.main) {
  const { runStandalone } = await import("./_spawn.ts");
  await runStandalone(bench);
}
