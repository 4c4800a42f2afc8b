/**
 * The scanner's UTC schedules, in the five-field cron syntax `Deno.cron` takes, and
 * {@linkcode nextTicks} to list when one fires, so the schedules are testable without
 * `Deno.cron` (a test driver feeds the ticks from a fake clock).
 */

/** The timeframes the scanner scans (1H and up). */
export const SCAN_TIMEFRAMES = ["1h", "2h", "4h", "1d", "1w"] as const;
/** A scanned timeframe. */
export type ScanTimeframe = typeof SCAN_TIMEFRAMES[number];

/** When each timeframe is scanned, UTC: a minute or more after its bar closes. */
export const SCAN_SCHEDULES: Readonly<Record<ScanTimeframe, string>> = Object.freeze({
  "1h": "1 * * * *",
  "2h": "1 */2 * * *",
  "4h": "1 */4 * * *",
  "1d": "5 0 * * *",
  "1w": "10 0 * * 1",
});

/** Retries of a failed cron callback, in ms (passed to `Deno.cron`). */
export const SCAN_BACKOFF_SCHEDULE: readonly number[] = [1_000, 5_000, 10_000];

const RANGES: readonly [number, number][] = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 6]];

/** Parses one cron field (`*`, `n`, `a-b`, `*\/s`, lists) into the set of values it allows. */
function parseField(field: string, [min, max]: [number, number]): Set<number> {
  const out = new Set<number>();
  for (const part of field.split(",")) {
    const [range, stepText] = part.split("/") as [string, string | undefined];
    const step = stepText === undefined ? 1 : Number(stepText);
    let [from, to] = [min, max];
    if (range !== "*") {
      const [a, b] = range.split("-");
      from = Number(a);
      to = b === undefined ? (stepText === undefined ? from : max) : Number(b);
    }
    if (![from, to, step].every(Number.isInteger) || step < 1 || from < min || to > max) {
      throw new RangeError(`Cannot parse cron field "${field}": out of ${min}-${max}`);
    }
    for (let v = from; v <= to; v += step) out.add(v);
  }
  return out;
}

/** Whether UTC minute `at` matches cron `schedule`. */
export function matches(schedule: string, at: Date): boolean {
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw new RangeError(`Cannot parse cron schedule "${schedule}": it needs five fields`);
  }
  const [minute, hour, dom, month, dow] = fields.map((f, i) => parseField(f, RANGES[i]!));
  return minute!.has(at.getUTCMinutes()) && hour!.has(at.getUTCHours()) &&
    dom!.has(at.getUTCDate()) && month!.has(at.getUTCMonth() + 1) && dow!.has(at.getUTCDay());
}

/** The UTC minutes after `from` and up to `to` at which `schedule` fires, in order. */
export function nextTicks(schedule: string, from: Date, to: Date): Date[] {
  const out: Date[] = [];
  const minute = 60_000;
  for (
    let t = Math.floor(from.getTime() / minute) * minute + minute;
    t <= to.getTime();
    t += minute
  ) {
    const at = new Date(t);
    if (matches(schedule, at)) out.push(at);
  }
  return out;
}
