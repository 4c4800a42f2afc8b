/**
 * What the HTTP stack costs: GET /health through the whole runtime (`start()` from main.ts, every
 * middleware) against a bare `Deno.serve` (the floor), open loop at fixed rates and at the
 * highest lossless rate; then GET /health/ready (database ping, KV read, actors) on PGlite and
 * on PostgreSQL; then the hot-path floor DESIGN.md quotes (one INSERT per request).
 *
 * Every server runs in its own process (bench/_server.ts), the load client here. Servers that
 * are compared are up together and measured in turn: each fixed rate runs REPS times,
 * interleaved (floor, app, floor, app, ...), and the table shows the median of each figure, so
 * a hiccup of the shared 2-core machine hits one repetition of one side, not the ratio.
 *
 * The app runs with LOG_LEVEL=warning: at info the access log writes a JSON line per request
 * (/health itself logs at debug, /health/ready at info), which would be most of what we measure.
 *
 *     deno run -A bench/http_stack.ts
 */
import {
  findMaxRate,
  type FindMaxRateOptions,
  type MaxRateResult,
  type MaxRateStep,
  type OpenLoopOptions,
  type OpenLoopResult,
  runOpenLoop,
} from "./_load.ts";
import { cpuBetween, type CpuUse, sampleCpu } from "./_cpu.ts";
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

/** Fixed rates for the open-loop runs; each runs REPS times for RUN_MS. */
const RATES = [500, 2000] as const;
const RUN_MS = 2000;
const REPS = 3;
/** Warm-up before measuring an endpoint (JIT on both sides, connections). */
const WARMUP = { ratePerSecond: 1000, durationMs: 1000 };
/** A server that used less than this share of a core at its best and first failed rate was not the limit. */
const SATURATED = 0.8;
/** Cores busy outside the server and the client above which they, not the client, were the limit. */
const REST_BUSY = 0.5;

/** One fixed-rate run and the CPU used meanwhile. */
interface Run {
  result: OpenLoopResult;
  cpu: CpuUse;
}

/** A max-rate search and the CPU used during each step. */
interface Search {
  found: MaxRateResult;
  cpu: Map<MaxRateStep, CpuUse>;
}

/** Something to load: a server and what to send it. */
interface Target {
  label: string;
  server: BenchServer;
  load: Omit<OpenLoopOptions, "url" | "ratePerSecond" | "durationMs"> & { path: string };
}

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

async function spawn(...args: Parameters<typeof spawnServer>): Promise<BenchServer> {
  const started = performance.now();
  const server = await spawnServer(...args);
  progress(
    `${server.mode}${server.database ? ` (${server.database})` : ""} up in ${
      ms(performance.now() - started)
    } ms`,
  );
  return server;
}

async function measure(target: Target, ratePerSecond: number, durationMs: number): Promise<Run> {
  const { path, ...load } = target.load;
  const { server } = target;
  const before = sampleCpu(server.pid);
  const result = await runOpenLoop({
    ...load,
    url: server.url + path,
    ratePerSecond,
    durationMs,
  });
  const cpu = cpuBetween(before, sampleCpu(server.pid));
  ensureAlive(server);
  return { result, cpu };
}

/** Warms every target, then runs each rate REPS times, interleaving the targets. */
async function interleaved(targets: Target[]): Promise<Map<string, Run[][]>> {
  for (const t of targets) await measure(t, WARMUP.ratePerSecond, WARMUP.durationMs);
  const runs = new Map(targets.map((t) => [t.label, RATES.map((): Run[] => [])]));
  for (let rep = 0; rep < REPS; rep++) {
    for (const [i, r] of RATES.entries()) {
      for (const t of targets) runs.get(t.label)![i]!.push(await measure(t, r, RUN_MS));
    }
  }
  return runs;
}

async function search(
  target: Target,
  options: Omit<FindMaxRateOptions, "url" | "maxRate">,
): Promise<Search> {
  const { path, ...load } = target.load;
  const { server } = target;
  const cpu = new Map<MaxRateStep, CpuUse>();
  let before = sampleCpu(server.pid);
  const found = await findMaxRate({
    ...load,
    ...options,
    url: server.url + path,
    maxRate: 60_000,
    beforeStep: () => before = sampleCpu(server.pid),
    afterStep: (step) => cpu.set(step, cpuBetween(before, sampleCpu(server.pid))),
  });
  ensureAlive(server);
  return { found, cpu };
}

/** The median p99 of some runs. */
function p99(runs: Run[]): number {
  return median(runs.map((r) => r.result.latencyMs.p99));
}

function p50(runs: Run[]): number {
  return median(runs.map((r) => r.result.latencyMs.p50));
}

const RUN_HEADER = [
  "server",
  "rate/s",
  "ok/sched",
  "p50",
  "p90",
  "p99",
  "p99 range",
  "max",
  "svc p50",
  "lag p99",
  "achieved/s",
  "srv µs/req",
  "rest CPU",
];

/** Server CPU time per answered request, in µs, over some runs. */
function serverMicros(runs: Run[]): number {
  const seconds = runs.reduce((sum, run) => sum + run.cpu.serverSeconds, 0);
  const answered = runs.reduce((sum, run) => sum + run.result.latencyMs.count, 0);
  return (seconds / answered) * 1e6;
}

/** One table row from REPS runs: totals for counts, medians for the rest, the worst max. */
function row(label: string, target: number, runs: Run[] | undefined): string[] {
  if (!runs || runs.length === 0) return [label, rate(target), "skipped"];
  const of = (f: (r: OpenLoopResult) => number) => runs.map((run) => f(run.result));
  return [
    ...latencyColumns(label, target, runs.map((run) => run.result)),
    ms(median(of((r) => r.serviceMs.p50))),
    ms(median(of((r) => r.sendLagMs.p99))),
    rate(median(of((r) => r.achievedRate))),
    serverMicros(runs).toFixed(0),
    percent(median(runs.map((r) => r.cpu.rest))),
  ];
}

function firstFailure(s: Search): MaxRateStep | undefined {
  return s.found.steps.find((step) => step.rate === s.found.failedAt);
}

function bestStep(s: Search): MaxRateStep | undefined {
  return s.found.steps.find((step) => step.result === s.found.best);
}

/** The most CPU the server used at the best rate or the first failed one. */
function peakCpu(s: Search, of: "server" | "rest" = "server"): number {
  return Math.max(
    ...[bestStep(s), firstFailure(s)].map((step) => step ? s.cpu.get(step)?.[of] ?? 0 : 0),
  );
}

function whyFailed(step: MaxRateStep | undefined): string {
  if (!step) return "no failure within the time budget";
  const r = step.result;
  const parts: string[] = [];
  if (r.errors > 0) parts.push(`${r.errors} errors (${r.timeouts} timeouts, ${r.dropped} dropped)`);
  if (r.ok + r.errors < r.scheduled) parts.push(`${r.scheduled - r.ok - r.errors} non-2xx`);
  if (r.achievedRate < 0.95 * step.rate) parts.push(`achieved ${rate(r.achievedRate)}/s`);
  return parts.join(", ") || "not lossless";
}

const SEARCH_HEADER = [
  "server",
  "max rate/s",
  "p99 there",
  "srv CPU",
  "rest CPU",
  "failed at/s",
  "srv CPU",
  "steps",
  "failed by",
];

function searchRow(label: string, s: Search | undefined): string[] {
  if (!s) return [label, "skipped"];
  const best = bestStep(s);
  const failed = firstFailure(s);
  return [
    label,
    rate(s.found.maxRate),
    best ? ms(best.result.latencyMs.p99) : "–",
    best ? percent(s.cpu.get(best)?.server ?? NaN) : "–",
    best ? percent(s.cpu.get(best)?.rest ?? NaN) : "–",
    failed ? rate(failed.rate) : "–",
    failed ? percent(s.cpu.get(failed)?.server ?? NaN) : "–",
    `${s.found.steps.length} in ${(s.found.elapsedMs / 1000).toFixed(1)} s`,
    whyFailed(failed),
  ];
}

/** Says so when a search was stopped by something other than the server's own CPU. */
function clientBoundNote(label: string, s: Search | undefined, extra = ""): void {
  if (!s || s.found.failedAt === undefined) return;
  const cpu = peakCpu(s);
  if (cpu >= SATURATED) return;
  const rest = peakCpu(s, "rest");
  writeLine(
    `  ${label}: the server never used more than ${percent(cpu)} of a core — ` +
      (rest >= REST_BUSY
        ? `the limit was elsewhere (${percent(rest)} of a core busy outside the server and the ` +
          "client: PostgreSQL or other processes)"
        : `it was not saturated, so the load client (or a stall) was the limit and ` +
          `${rate(s.found.maxRate)}/s is a lower bound${extra}`),
  );
}

/** Runs `fn`; on failure notes why and returns undefined (PostgreSQL may be absent). */
async function optional<T>(
  what: string,
  notes: string[],
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (error) {
    notes.push(`${what} skipped: ${(error as Error).message.split("\n")[0]}`);
    return undefined;
  }
}

/** Runs the bench and writes its tables. */
export async function bench(): Promise<void> {
  const notes: string[] = [];
  const servers: BenchServer[] = [];
  try {
    // 1. GET /health: the floor and the runtime on PGlite, up together, measured in turn.
    const floorServer = await spawn("floor");
    servers.push(floorServer);
    const appServer = await spawn("app");
    servers.push(appServer);
    const floor: Target = { label: "floor", server: floorServer, load: { path: "/health" } };
    const app: Target = { label: "app", server: appServer, load: { path: "/health" } };
    const health = await interleaved([floor, app]);
    progress("/health fixed rates done, searching the max rates");
    const floorMax = await search(floor, { startRate: 2000, budgetMs: 20_000 });
    const appMax = await search(app, { startRate: 2000, budgetMs: 20_000 });
    await floorServer.stop();

    // 2. GET /health/ready on PGlite (the same runtime) and on PostgreSQL.
    const readyPglite: Target = {
      label: "pglite",
      server: appServer,
      load: { path: "/health/ready" },
    };
    const pgServer = await optional("PostgreSQL", notes, () => spawn("app", { postgres: true }));
    if (pgServer) servers.push(pgServer);
    const readyPg: Target | undefined = pgServer &&
      { label: "postgres", server: pgServer, load: { path: "/health/ready" } };
    const ready = await interleaved(readyPg ? [readyPglite, readyPg] : [readyPglite]);
    progress("/health/ready fixed rates done, searching the max rates");
    const readyPgliteMax = await search(readyPglite, { startRate: 2000, budgetMs: 10_000 });
    const readyPgMax = readyPg && await search(readyPg, { startRate: 2000, budgetMs: 10_000 });
    await appServer.stop();
    await pgServer?.stop();

    // 3. The hot-path floor from DESIGN.md: bare Deno.serve + one INSERT over postgres.js.
    const insert = await optional("Insert floor", notes, async () => {
      const server = await spawn("floor-insert");
      servers.push(server);
      const target: Target = {
        label: "floor-insert",
        server,
        load: {
          path: "/hook",
          method: "POST",
          headers: { "content-type": "application/json" },
          body: (i: number) => JSON.stringify({ ticker: "AAPL", action: "buy", seq: i }),
        },
      };
      await measure(target, WARMUP.ratePerSecond, WARMUP.durationMs);
      const run = await measure(target, 1000, RUN_MS * REPS);
      progress("floor-insert: 1,000/s done, searching its max rate");
      const max = await search(target, { startRate: 2000, budgetMs: 12_000 });
      await server.stop();
      return { run, max };
    });

    writeLine("GET /health — full runtime (app, PGlite) vs bare Deno.serve (floor)");
    writeLine(
      `  open loop; median of ${REPS} interleaved runs of ${RUN_MS / 1000} s per rate; ` +
        "latency in ms from the scheduled send;",
    );
    writeLine("  svc = from the actual send; lag = the client's own lateness (its health);");
    writeLine(
      "  srv µs/req = server CPU per answer; rest CPU = cores busy outside the server and the load",
    );
    writeLine(
      "  client (other processes, PostgreSQL's backends): high means the figures are noisy",
    );
    writeTable(
      RUN_HEADER,
      RATES.flatMap((r, i) => [
        row("floor", r, health.get("floor")![i]),
        row("app", r, health.get("app")![i]),
      ]),
    );
    const ratios = (f: (runs: Run[]) => number) =>
      RATES.map((r, i) =>
        `${ratio(f(health.get("app")![i]!) / f(health.get("floor")![i]!))} at ${rate(r)}/s`
      ).join(", ");
    writeLine(
      `  app÷floor p99: ${ratios(p99)}; p50: ${ratios(p50)}; server CPU per request: ${
        ratios(serverMicros)
      }`,
    );
    writeLine();

    writeLine(
      "Highest lossless rate, GET /health (1.5 s steps ×1.5, a failure retried once, then bisection; ≤20 s)",
    );
    writeTable(SEARCH_HEADER, [searchRow("floor", floorMax), searchRow("app", appMax)]);
    writeLine(`  app÷floor max rate: ${ratio(appMax.found.maxRate / floorMax.found.maxRate)}`);
    clientBoundNote("floor", floorMax, ", and the app÷floor ratio an upper bound");
    clientBoundNote("app", appMax);
    writeLine();

    writeLine("GET /health/ready — database ping + KV read + actors, PGlite vs PostgreSQL");
    writeTable(
      RUN_HEADER,
      RATES.flatMap((r, i) => [
        row("app /health", r, health.get("app")![i]),
        row("pglite /ready", r, ready.get("pglite")![i]),
        row("postgres /ready", r, ready.get("postgres")?.[i]),
      ]),
    );
    const healthP50 = p50(health.get("app")![0]!);
    writeLine(
      `  /ready÷/health p50 at ${rate(RATES[0])}/s: PGlite ` +
        ratio(p50(ready.get("pglite")![0]!) / healthP50) +
        (ready.has("postgres")
          ? `, PostgreSQL ${ratio(p50(ready.get("postgres")![0]!) / healthP50)}`
          : ""),
    );
    writeTable(SEARCH_HEADER, [
      searchRow("pglite /ready", readyPgliteMax),
      searchRow("postgres /ready", readyPgMax),
    ]);
    writeLine("  srv CPU is the Deno process only; PostgreSQL's own backends are not counted");
    writeLine();

    writeLine("Hot-path floor (DESIGN.md): bare Deno.serve + one INSERT over postgres.js, POST");
    writeTable(RUN_HEADER, [row("floor-insert", 1000, insert && [insert.run])]);
    writeTable(SEARCH_HEADER, [searchRow("floor-insert", insert?.max)]);
    clientBoundNote("floor-insert", insert?.max);
    writeLine("  DESIGN.md says: ~10,700 req/s; at 1,000/s p50 ~1.2 ms, p99 11–28 ms");
    for (const note of notes) writeLine(`  note: ${note}`);
  } finally {
    for (const server of servers) await server.stop();
  }
}

if (import.meta.main) {
  const { runStandalone } = await import("./_spawn.ts");
  await runStandalone(bench);
}
