/**
 * An open-loop HTTP load client. Request i is sent at its scheduled time `t0 + i / rate`
 * whether or not earlier requests have answered, and its latency is measured from that
 * scheduled time, so a server that stalls is charged for every request it kept waiting (no
 * coordinated omission). The time from the actual send (service time) and the client's own
 * lateness (send lag) are reported beside it, so a client that cannot keep up is visible.
 *
 * Transport: Deno's `fetch` over one keep-alive `Deno.HttpClient` per run, behind a pool of at
 * most `connections` requests on the wire. Measured on our 2-core machines: an ungated `fetch`
 * opens a new connection whenever none is idle at that instant, and past ~8,000 requests/s it
 * snowballs into thousands of sockets (the server died of EMFILE); gated, it holds 32
 * connections at 20,000 requests/s and costs the same client CPU as `node:http` with a
 * keep-alive Agent (40–70 µs a request, more for responses with many headers), so we keep
 * `fetch`. That puts this client's ceiling near 20,000 requests/s on one core: the bare
 * `Deno.serve` floor needs ~10 µs a request and cannot be saturated by it.
 *
 * Pacing: timers in Deno fire on a ~2 ms grid, so when the next send is nearer than 3 ms the
 * scheduler yields with `setImmediate` (which still polls I/O) instead of sleeping. Send lag
 * stays well under a millisecond, at the price of keeping the client's core busy while a run
 * lasts — one reason the server runs in another process. `pacing: "timer"` sleeps instead:
 * cheap, but requests leave in ~2 ms batches and that lag is part of the latency.
 */
import { setImmediate } from "node:timers";

/** Exact percentiles of a set of milliseconds. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  /** How many values they summarize. */
  count: number;
}

/** What request i is, when a factory builds it. */
export interface RequestSpec {
  url: string | URL;
  method?: string;
  headers?: HeadersInit;
  body?: string;
}

/** Options of {@linkcode runOpenLoop}. */
export interface OpenLoopOptions {
  /** Where to send; required unless `request` is given. */
  url?: string | URL;
  /** Builds request i; overrides `url`, `method`, `headers` and `body`. */
  request?: (i: number) => Request | RequestSpec;
  /** Requests per second to schedule. */
  ratePerSecond: number;
  /** How long to keep scheduling; `round(ratePerSecond * durationMs / 1000)` requests in all. */
  durationMs: number;
  /** Default "GET". */
  method?: string;
  headers?: HeadersInit;
  /** The body of request i. */
  body?: (i: number) => string;
  /** A request without a response this long after its scheduled time is aborted and counts as an error. Default 5000. */
  timeoutMs?: number;
  /**
   * At most this many requests in flight (on the wire or waiting for a connection); a request
   * due while the limit is reached is not sent and counts as an error, since waiting for a free
   * slot would be coordinated omission. Default 2000.
   */
  maxInFlight?: number;
  /** At most this many requests on the wire at once, hence connections. Default 64. */
  connections?: number;
  /** Which statuses count as success. Default: 2xx. */
  isOk?: (status: number) => boolean;
  /** "spin" (default) for sub-millisecond send times, "timer" to spare the CPU. */
  pacing?: "spin" | "timer";
}

/** What {@linkcode runOpenLoop} measured. */
export interface OpenLoopResult {
  /** The rate asked for. */
  targetRate: number;
  /** Requests scheduled: `ok + (responses with a non-ok status) + errors`. */
  scheduled: number;
  /** Requests handed to the transport (scheduled minus those dropped at `maxInFlight`). */
  sent: number;
  /** Responses whose status passed `isOk`. */
  ok: number;
  /** Requests without an HTTP response: network errors, timeouts and drops. */
  errors: number;
  timeouts: number;
  dropped: number;
  /** Responses by status code. */
  statuses: Record<number, number>;
  /** Up to 5 distinct error messages, to tell what went wrong. */
  errorSamples: string[];
  /** Scheduled send → response body read, over every request that got a response. */
  latencyMs: Percentiles;
  /** Actual send → response body read (what a closed-loop client would report). */
  serviceMs: Percentiles;
  /** Actual send − scheduled send (pool waits included): the client's own lateness. */
  sendLagMs: Percentiles;
  /** The most requests in flight at once, and how many had to wait for a connection. */
  peakInFlight: number;
  waitedForConnection: number;
  /** Ok responses per second, over the longer of the schedule and the time to the last answer. */
  achievedRate: number;
  /** Wall time of the run, first scheduled send to last answer. */
  elapsedMs: number;
}

const EMPTY: Percentiles = { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN, count: 0 };

/** Exact percentiles (nearest rank) of `values`, which it sorts in place. */
export function percentiles(values: Float64Array | number[]): Percentiles {
  const n = values.length;
  if (n === 0) return EMPTY;
  const sorted = values instanceof Float64Array ? values.sort() : values.sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * n) - 1)]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    p50: rank(50),
    p90: rank(90),
    p99: rank(99),
    max: sorted[n - 1]!,
    mean: sum / n,
    count: n,
  };
}

/** Resolves on the next turn of the event loop, after pending I/O callbacks. */
function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Below this wait the spinning scheduler yields instead of sleeping (timers fire on a ~2 ms grid). */
const TIMER_SLACK_MS = 3;
/** How often expired requests are aborted. */
const SWEEP_MS = 25;

interface Pending {
  index: number;
  scheduledAt: number;
  controller: AbortController;
  /** queued: waiting for a connection; active: on the wire. */
  state: "queued" | "active" | "expired";
}

/**
 * Runs one open-loop load test and resolves when every sent request has answered, failed or
 * timed out.
 *
 * @example
 * const r = await runOpenLoop({ url: "http://127.0.0.1:8000/health", ratePerSecond: 500, durationMs: 3000 });
 * // r.latencyMs.p99, r.achievedRate, r.errors
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const rate = options.ratePerSecond;
  if (!(rate > 0) || !(options.durationMs > 0)) {
    throw new RangeError(
      `Cannot run a load test: ratePerSecond (${rate}) and durationMs (${options.durationMs}) must be positive`,
    );
  }
  if (!options.request && options.url === undefined) {
    throw new TypeError("Cannot run a load test: give a url or a request factory");
  }
  const total = Math.max(1, Math.round((rate * options.durationMs) / 1000));
  const intervalMs = 1000 / rate;
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxInFlight = options.maxInFlight ?? 2000;
  const connections = options.connections ?? 64;
  const isOk = options.isOk ?? ((s: number) => s >= 200 && s < 300);
  const spin = (options.pacing ?? "spin") === "spin";
  const build = options.request ?? ((i: number): RequestSpec => ({
    url: options.url!,
    method: options.method,
    headers: options.headers,
    body: options.body?.(i),
  }));
  const client = Deno.createHttpClient({ http1: true, http2: false });

  const latency = new Float64Array(total);
  const service = new Float64Array(total);
  const lag = new Float64Array(total).fill(NaN);
  let answered = 0;
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let timeouts = 0;
  let dropped = 0;
  let active = 0;
  let peakInFlight = 0;
  let waited = 0;
  let lastAnswer = 0;
  let settled = 0;
  const statuses: Record<number, number> = {};
  const errorSamples = new Set<string>();
  const inFlight = new Set<Pending>();
  const queue: Pending[] = [];
  let queueHead = 0;
  const allSettled = Promise.withResolvers<void>();

  function settle() {
    settled++;
    if (settled === total) allSettled.resolve();
  }

  function fail(message: string) {
    errors++;
    if (errorSamples.size < 5) errorSamples.add(message);
  }

  function timedOut() {
    timeouts++;
    fail(`timed out ${timeoutMs} ms after the scheduled send`);
  }

  async function start(p: Pending) {
    p.state = "active";
    active++;
    const sentAt = performance.now();
    lag[p.index] = sentAt - p.scheduledAt;
    try {
      const made = build(p.index);
      const response = made instanceof Request
        ? await fetch(made, { client, signal: p.controller.signal })
        : await fetch(made.url, {
          method: made.method ?? "GET",
          headers: made.headers,
          body: made.body,
          client,
          signal: p.controller.signal,
        });
      await response.arrayBuffer(); // read it all, so the connection goes back to the pool
      const now = performance.now();
      latency[answered] = now - p.scheduledAt;
      service[answered] = now - sentAt;
      answered++;
      lastAnswer = now;
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      if (isOk(response.status)) ok++;
    } catch (error) {
      if (p.controller.signal.aborted) timedOut();
      else fail((error as Error)?.message ?? String(error));
    } finally {
      active--;
      inFlight.delete(p);
      settle();
      pump();
    }
  }

  /** Starts queued requests while connections are free. */
  function pump() {
    while (active < connections && queueHead < queue.length) {
      const next = queue[queueHead++]!;
      if (next.state === "queued") start(next);
    }
    if (queueHead > 1024 && queueHead * 2 > queue.length) {
      queue.splice(0, queueHead);
      queueHead = 0;
    }
  }

  function dispatch(scheduledAt: number) {
    if (inFlight.size >= maxInFlight) {
      dropped++;
      fail(`dropped: ${maxInFlight} requests already in flight`);
      settle();
      return;
    }
    const p: Pending = {
      index: sent++,
      scheduledAt,
      controller: new AbortController(),
      state: "queued",
    };
    inFlight.add(p);
    if (inFlight.size > peakInFlight) peakInFlight = inFlight.size;
    if (active < connections && queueHead === queue.length) start(p);
    else {
      waited++;
      queue.push(p);
    }
  }

  const sweeper = setInterval(() => {
    const expiredBefore = performance.now() - timeoutMs;
    for (const p of inFlight) {
      if (p.scheduledAt > expiredBefore) continue;
      if (p.state === "queued") {
        p.state = "expired";
        inFlight.delete(p);
        timedOut();
        settle();
      } else if (p.state === "active") {
        p.controller.abort();
      }
    }
  }, SWEEP_MS);

  const t0 = performance.now() + 5;
  try {
    let i = 0;
    while (i < total) {
      const now = performance.now();
      // Send everything that is due, oldest first; none waits for an answer.
      while (i < total && t0 + i * intervalMs <= now) dispatch(t0 + i++ * intervalMs);
      if (i >= total) break;
      const wait = t0 + i * intervalMs - performance.now();
      if (!spin) await sleep(Math.max(0, wait));
      else if (wait > TIMER_SLACK_MS) await sleep(wait - TIMER_SLACK_MS);
      else await yieldToIo();
    }
    if (settled < total) await allSettled.promise;
  } finally {
    clearInterval(sweeper);
    for (const p of inFlight) p.controller.abort();
    client.close();
  }
  const elapsedMs = Math.max(t0 + total * intervalMs, lastAnswer) - t0;
  return {
    targetRate: rate,
    scheduled: total,
    sent,
    ok,
    errors,
    timeouts,
    dropped,
    statuses,
    errorSamples: [...errorSamples],
    latencyMs: percentiles(latency.subarray(0, answered)),
    serviceMs: percentiles(service.subarray(0, answered)),
    sendLagMs: percentiles(lag.subarray(0, sent).filter((v) => !Number.isNaN(v))),
    peakInFlight,
    waitedForConnection: waited,
    achievedRate: (ok * 1000) / elapsedMs,
    elapsedMs,
  };
}

/** True when every request got an ok response and the rate held within 5 %. */
export function isLossless(result: OpenLoopResult): boolean {
  return result.errors === 0 && result.ok === result.scheduled &&
    result.achievedRate >= 0.95 * result.targetRate;
}

/** Options of {@linkcode findMaxRate}. */
export interface FindMaxRateOptions extends Omit<OpenLoopOptions, "ratePerSecond" | "durationMs"> {
  /** The first rate tried. */
  startRate: number;
  /** Never tries above this. */
  maxRate: number;
  /** Each run's length; at most 2000. Default 1500. */
  stepMs?: number;
  /** Each next rate is the last good one times this. Default 1.5. */
  factor?: number;
  /** Starts no run that could end after this much time; at most 20000. Default 20000. */
  budgetMs?: number;
  /** Pause between runs so the server drains its backlog. Default 300. */
  restMs?: number;
  /**
   * Runs a failed rate again up to this many times (time allowing) before calling it a failure,
   * so that one stall of a shared machine does not end the search. Default 1.
   */
  retries?: number;
  /** Whether a run kept up; default {@linkcode isLossless}. */
  lossless?: (result: OpenLoopResult) => boolean;
  /** Called just before each run (to sample the server, say). */
  beforeStep?: (rate: number) => void;
  /** Called just after each run, before the rest. */
  afterStep?: (step: MaxRateStep) => void;
}

/** One run of {@linkcode findMaxRate}. */
export interface MaxRateStep {
  rate: number;
  lossless: boolean;
  result: OpenLoopResult;
}

/** What {@linkcode findMaxRate} found. */
export interface MaxRateResult {
  /** The highest rate that was lossless; 0 when even `startRate` was not. */
  maxRate: number;
  /** The run at `maxRate`, if any. */
  best?: OpenLoopResult;
  /** The lowest rate that failed every try, if one did. */
  failedAt?: number;
  /** Every run in order. */
  steps: MaxRateStep[];
  elapsedMs: number;
}

/**
 * Steps the rate up from `startRate` by `factor` with short runs until one is not lossless even
 * when retried (or `maxRate` or the time budget is reached), then bisects (geometrically) between the last good
 * and the first bad rate while the budget allows and they are more than 5 % apart. Returns the
 * highest lossless rate seen. Requests time out after 1 s unless `timeoutMs` says otherwise,
 * which bounds how long a failed run drains.
 *
 * @example
 * const { maxRate } = await findMaxRate({ url, startRate: 1000, maxRate: 50_000 });
 */
export async function findMaxRate(options: FindMaxRateOptions): Promise<MaxRateResult> {
  const {
    startRate,
    maxRate,
    stepMs: stepOption,
    factor = 1.5,
    budgetMs: budgetOption,
    restMs = 300,
    retries = 1,
    lossless = isLossless,
    beforeStep,
    afterStep,
    ...load
  } = options;
  const stepMs = Math.min(stepOption ?? 1500, 2000);
  const budgetMs = Math.min(budgetOption ?? 20_000, 20_000);
  const started = performance.now();
  const steps: MaxRateStep[] = [];
  let good = 0;
  let best: OpenLoopResult | undefined;
  let bad: number | undefined;
  // A step costs its run, the drain of its last answers (≤ the timeout) and the rest.
  const drainMs = (load.timeoutMs ?? 1000) + SWEEP_MS;
  const fits = () => performance.now() - started + stepMs + drainMs + restMs <= budgetMs;

  /** Runs `rate` until it passes or has failed 1 + `retries` times (or time is up). */
  async function attempt(rate: number): Promise<boolean> {
    for (let tries = 0;; tries++) {
      if (await once(rate)) return true;
      if (tries >= retries || !fits()) break;
    }
    if (bad === undefined || rate < bad) bad = rate;
    return false;
  }

  async function once(rate: number): Promise<boolean> {
    beforeStep?.(rate);
    const result = await runOpenLoop({
      timeoutMs: 1000,
      ...load,
      ratePerSecond: rate,
      durationMs: stepMs,
    });
    const passed = lossless(result);
    const step = { rate, lossless: passed, result };
    steps.push(step);
    afterStep?.(step);
    if (passed && rate > good) {
      good = rate;
      best = result;
    }
    await sleep(restMs);
    return passed;
  }

  let rate = Math.min(startRate, maxRate);
  while (fits()) {
    if (!(await attempt(rate))) break;
    if (rate >= maxRate) break;
    rate = Math.min(Math.round(rate * factor), maxRate);
  }
  // Narrow the bracket [good, bad) while there is time and it is wider than 5 %.
  while (bad !== undefined && good > 0 && bad / good > 1.05 && fits()) {
    await attempt(Math.round(Math.sqrt(good * bad)));
  }
  return { maxRate: good, best, failedAt: bad, steps, elapsedMs: performance.now() - started };
}
