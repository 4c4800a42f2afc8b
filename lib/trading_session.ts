/**
 * Trading sessions: the weekly hours during which an account may trade, in the exchange's own
 * time zone so that daylight-saving changes need no care from the trader.
 */
import { z } from "zod";

const TIME = /^(?:[01]\d|2[0-3]):[0-5]\d$/;
const DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;
const WEEKDAYS: Record<string, number> = {
  Mon: 1,
  Tue: 2,
  Wed: 3,
  Thu: 4,
  Fri: 5,
  Sat: 6,
  Sun: 7,
};

/** Whether `timezone` is an IANA time zone this runtime knows. */
export function isValidTimeZone(timezone: string): boolean {
  try {
    formatterFor(timezone);
    return true;
  } catch {
    return false;
  }
}

/** The schema of a {@linkcode TradingSession}, as stored in an account's risk limits. */
export const TradingSessionSchema = z.strictObject({
  timezone: z.string({ error: '"timezone" must be an IANA time zone such as "America/New_York"' })
    .refine(isValidTimeZone, {
      error: (issue) => `Unknown time zone "${String(issue.input)}"`,
    }),
  days: z.array(
    z.int({ error: '"days" must hold whole numbers from 1 (Mon) to 7 (Sun)' }).min(1, {
      error: '"days" must hold whole numbers from 1 (Mon) to 7 (Sun)',
    }).max(7, { error: '"days" must hold whole numbers from 1 (Mon) to 7 (Sun)' }),
    { error: '"days" must be an array of weekdays from 1 (Mon) to 7 (Sun)' },
  ).min(1, { error: '"days" must name at least one weekday' })
    .refine((days) => new Set(days).size === days.length, {
      error: '"days" must not repeat a weekday',
    }),
  start: z.string({ error: '"start" must be a time "HH:MM"' }).regex(TIME, {
    error: (issue) => `"start" must be a time "HH:MM", not "${String(issue.input)}"`,
  }),
  end: z.string({ error: '"end" must be a time "HH:MM"' }).regex(TIME, {
    error: (issue) => `"end" must be a time "HH:MM", not "${String(issue.input)}"`,
  }),
}).refine((s) => s.start !== s.end, {
  error: '"start" and "end" must differ',
  path: ["end"],
});

/**
 * Weekly trading hours. `days` are ISO weekdays (1 = Mon … 7 = Sun) on which a session STARTS;
 * `start` is inclusive, `end` exclusive. When `start` > `end` the session runs overnight and
 * belongs to the day it starts on (CME Globex: `days: [7, 1, 2, 3, 4], start: "18:00",
 * end: "17:00"` in America/New_York).
 */
export type TradingSession = z.infer<typeof TradingSessionSchema>;

/** A wall-clock reading in some time zone. `weekday` is ISO (1 = Mon … 7 = Sun). */
export interface ZonedTime {
  year: number;
  month: number;
  day: number;
  weekday: number;
  hour: number;
  minute: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      year: "numeric",
      month: "numeric",
      day: "numeric",
      weekday: "short",
      hour: "numeric",
      minute: "numeric",
      hourCycle: "h23",
    });
    formatters.set(timezone, formatter);
  }
  return formatter;
}

/** The wall-clock date and time of `instant` in `timezone` (DST-correct, through Intl). */
export function zonedTime(instant: Date, timezone: string): ZonedTime {
  const parts: Record<string, string> = {};
  for (const part of formatterFor(timezone).formatToParts(instant)) parts[part.type] = part.value;
  const weekday = WEEKDAYS[parts.weekday ?? ""];
  if (weekday === undefined) {
    throw new RangeError(`Cannot read the weekday of "${instant.toISOString()}" in "${timezone}"`);
  }
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday,
    hour: Number(parts.hour),
    minute: Number(parts.minute),
  };
}

function minutesOf(time: string): number {
  return Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5));
}

/**
 * Whether `now` falls inside `session`. An overnight session counts for the day it starts on:
 * with Sun–Thu 18:00–17:00, Friday 16:59 is inside (Thursday's session) and Friday 18:00 is not.
 */
export function isInSession(session: TradingSession, now: Date): boolean {
  const { weekday, hour, minute } = zonedTime(now, session.timezone);
  const minutes = hour * 60 + minute;
  const start = minutesOf(session.start);
  const end = minutesOf(session.end);
  const days = new Set(session.days);
  if (start < end) return days.has(weekday) && minutes >= start && minutes < end;
  const yesterday = weekday === 1 ? 7 : weekday - 1;
  return (days.has(weekday) && minutes >= start) || (days.has(yesterday) && minutes < end);
}

/**
 * A short human description of a session for messages to the trader.
 *
 * @example
 * describeSession({ timezone: "America/New_York", days: [1, 2, 3, 4, 5], start: "09:30", end: "16:00" });
 * // "Mon–Fri 09:30–16:00 America/New_York"
 */
export function describeSession(session: TradingSession): string {
  return `${describeDays(session.days)} ${session.start}–${session.end} ${session.timezone}`;
}

function describeDays(days: readonly number[]): string {
  const set = new Set(days);
  if (set.size === 0) return "No days";
  if (set.size >= 7) return "Mon–Sun";
  // Start right after a gap so a run across the week's end (Sun–Thu) stays one run.
  let first = 1;
  while (!set.has(first) || set.has(first === 1 ? 7 : first - 1)) first++;
  const runs: string[] = [];
  let runStart: number | undefined;
  let previous = 0;
  for (let i = 0; i <= 7; i++) {
    const day = ((first - 1 + i) % 7) + 1;
    if (i < 7 && set.has(day)) {
      runStart ??= day;
      previous = day;
    } else if (runStart !== undefined) {
      const from = DAY_NAMES[runStart - 1];
      const to = DAY_NAMES[previous - 1];
      runs.push(runStart === previous ? `${from}` : `${from}–${to}`);
      runStart = undefined;
    }
  }
  return runs.join(", ");
}
