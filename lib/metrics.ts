/**
 * Metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and
 * histograms with labels, kept in memory per process and rendered on `/metrics`. Gauges that
 * read live state (queue depths, breaker states) are collected at scrape time.
 */

/** Label values by label name. */
export type Labels = Record<string, string>;

/** Default latency buckets, in seconds. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

/** A counter: a value that only goes up. */
export class Counter {
  #values = new Map<string, { labels: Labels; value: number }>();

  /** Adds `by` (default 1) to the series of `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    const series = this.#values.get(key);
    if (series) series.value += by;
    else this.#values.set(key, { labels, value: by });
  }

  /** The current value of the series of `labels` (0 when never incremented). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels))?.value ?? 0;
  }

  /** @internal */
  lines(name: string): string[] {
    return [...this.#values.values()].map((s) => `${name}${labelText(s.labels)} ${s.value}`);
  }
}

/** A histogram of observations into cumulative buckets. */
export class Histogram {
  #buckets: number[];
  #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(buckets: number[] = LATENCY_BUCKETS) {
    this.#buckets = [...buckets].sort((a, b) => a - b);
  }

  /** Records one observation of `value` for `labels`. */
  observe(labels: Labels, value: number): void {
    const key = labelKey(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels, counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    for (let i = 0; i < this.#buckets.length; i++) {
      if (value <= this.#buckets[i]!) series.counts[i]!++;
    }
    series.sum += value;
    series.count++;
  }

  /** @internal */
  lines(name: string): string[] {
    const out: string[] = [];
    for (const s of this.#series.values()) {
      this.#buckets.forEach((le, i) => {
        out.push(`${name}_bucket${labelText({ ...s.labels, le: String(le) })} ${s.counts[i]}`);
      });
      out.push(`${name}_bucket${labelText({ ...s.labels, le: "+Inf" })} ${s.count}`);
      out.push(`${name}_sum${labelText(s.labels)} ${round(s.sum)}`);
      out.push(`${name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

/** A gauge whose series are read when scraped. */
export type GaugeCollector = () =>
  | Array<{ labels?: Labels; value: number }>
  | Promise<Array<{ labels?: Labels; value: number }>>;

/** The metrics of one process. */
export class Registry {
  #families: Family[] = [];
  #collectors: Array<{ name: string; help: string; collect: GaugeCollector }> = [];

  /** Registers a counter named `name`. */
  counter(name: string, help: string): Counter {
    const counter = new Counter();
    this.#add({ name, help, type: "counter", render: () => counter.lines(name) });
    return counter;
  }

  /** Registers a histogram named `name`. */
  histogram(name: string, help: string, buckets?: number[]): Histogram {
    const histogram = new Histogram(buckets);
    this.#add({ name, help, type: "histogram", render: () => histogram.lines(name) });
    return histogram;
  }

  /** Registers a gauge read by `collect` at every scrape. */
  gauge(name: string, help: string, collect: GaugeCollector): void {
    this.#assertNew(name);
    this.#collectors.push({ name, help, collect });
  }

  /**
   * The exposition text. A collector that fails is left out of this scrape and counted in
   * `trendedge_metrics_collect_errors`, so one broken source never hides the others.
   */
  async render(): Promise<string> {
    const out: string[] = [];
    for (const f of this.#families) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    }
    let errors = 0;
    const collected = await Promise.all(this.#collectors.map(async (c) => {
      try {
        return { c, series: await c.collect() };
      } catch {
        errors++;
        return { c, series: null };
      }
    }));
    for (const { c, series } of collected) {
      if (!series) continue;
      out.push(`# HELP ${c.name} ${c.help}`, `# TYPE ${c.name} gauge`);
      for (const s of series) out.push(`${c.name}${labelText(s.labels ?? {})} ${round(s.value)}`);
    }
    out.push(
      "# HELP trendedge_metrics_collect_errors Gauges that could not be read in this scrape",
      "# TYPE trendedge_metrics_collect_errors gauge",
      `trendedge_metrics_collect_errors ${errors}`,
    );
    return out.join("\n") + "\n";
  }

  #add(family: Family) {
    this.#assertNew(family.name);
    this.#families.push(family);
  }

  #assertNew(name: string) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) {
      throw new TypeError(`Cannot register metric "${name}": not a valid metric name`);
    }
    if (
      this.#families.some((f) => f.name === name) || this.#collectors.some((c) => c.name === name)
    ) {
      throw new TypeError(`Cannot register metric "${name}": it exists already`);
    }
  }
}

/** Measures event-loop lag: how late a timer due every `intervalMs` fires. */
export function eventLoopLag(intervalMs = 500): { lagMs(): number; stop(): void } {
  let last = performance.now();
  let lag = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(0, now - last - intervalMs);
    last = now;
  }, intervalMs);
  Deno.unrefTimer(timer);
  return { lagMs: () => lag, stop: () => clearInterval(timer) };
}

function labelKey(labels: Labels): string {
  return Object.keys(labels).sort().map((k) => `${k}\u0000${labels[k]}`).join("\u0001");
}

function labelText(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  return `{${keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(",")}}`;
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 1e6) / 1e6);
}
