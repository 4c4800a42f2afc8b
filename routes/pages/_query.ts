/**
 * Reading a list page's GET form: each filter checked on its own, so a bad value becomes a
 * readable message on a 400 page (never a 500), and links that keep the filters.
 */
import { type Cursor, decodeCursor } from "../../db/reads.ts";

export { MAX_PAGE_SIZE } from "../../db/reads.ts";

/** The filters a page read, and what was wrong with the others. */
export interface ParsedQuery {
  values: Record<string, string>;
  problems: string[];
}

const ALIAS = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A query reader that collects a problem per bad parameter. */
export class QueryReader {
  readonly problems: string[] = [];
  readonly #query: URLSearchParams;

  constructor(url: string) {
    this.#query = new URL(url).searchParams;
  }

  /** The trimmed value of `name`; undefined when absent or empty. */
  text(name: string): string | undefined {
    const value = this.#query.get(name)?.trim();
    return value ? value : undefined;
  }

  /** One of `allowed`, or undefined (a problem when given but not allowed). */
  oneOf<T extends string>(name: string, label: string, allowed: readonly T[]): T | undefined {
    const value = this.text(name);
    if (value === undefined) return undefined;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.problems.push(
      `Unknown ${label} "${clip(value)}": choose one of ${allowed.join(", ")}`,
    );
    return undefined;
  }

  /** A symbol or ticker (1–64 characters). */
  symbol(name = "symbol"): string | undefined {
    const value = this.text(name);
    if (value === undefined) return undefined;
    if (value.length <= 64 && !/\s/.test(value) && !hasControl(value)) return value;
    this.problems.push(
      `Cannot filter by symbol "${clip(value)}": at most 64 characters, no spaces`,
    );
    return undefined;
  }

  /** An account alias. */
  account(name = "account"): string | undefined {
    const value = this.text(name);
    if (value === undefined) return undefined;
    if (ALIAS.test(value)) return value;
    this.problems.push(
      `Cannot filter by account "${
        clip(value)
      }": an alias is lowercase letters, digits, "-" and "_"`,
    );
    return undefined;
  }

  /** A calendar date `YYYY-MM-DD`, as its parts. */
  date(name: string, label: string): { y: number; m: number; d: number } | undefined {
    const value = this.text(name);
    if (value === undefined) return undefined;
    const match = DATE.exec(value);
    if (match) {
      const [y, m, d] = [Number(match[1]), Number(match[2]), Number(match[3])];
      const check = new Date(Date.UTC(y, m - 1, d));
      if (
        y >= 1970 && y <= 9999 && check.getUTCFullYear() === y &&
        check.getUTCMonth() === m - 1 && check.getUTCDate() === d
      ) return { y, m, d };
    }
    this.problems.push(`Cannot read the ${label} date "${clip(value)}": use YYYY-MM-DD`);
    return undefined;
  }

  /** A page size between 1 and `max`. */
  limit(max: number, name = "limit"): number | undefined {
    const value = this.text(name);
    if (value === undefined) return undefined;
    if (/^\d{1,4}$/.test(value) && Number(value) >= 1 && Number(value) <= max) {
      return Number(value);
    }
    this.problems.push(`Cannot show "${clip(value)}" rows a page: choose 1 to ${max}`);
    return undefined;
  }

  /** A page cursor made by the list. */
  cursor(name = "cursor"): Cursor | undefined {
    const value = this.text(name);
    if (value === undefined) return undefined;
    const cursor = decodeCursor(value);
    if (cursor) return cursor;
    this.problems.push("Cannot continue the list: the page link is damaged. Start from the newest");
    return undefined;
  }
}

function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) < 32) return true;
  return false;
}

function clip(value: string): string {
  return value.length > 40 ? `${value.slice(0, 40)}…` : value;
}

/** The instant the day `date` starts in `zone` (midnight wall-clock time there). */
export function zonedMidnight(date: { y: number; m: number; d: number }, zone: string): Date {
  const wall = Date.UTC(date.y, date.m - 1, date.d);
  // The zone's offset at a guess, then again at the corrected guess (a DST change that day).
  let at = wall - offsetAt(wall, zone);
  at = wall - offsetAt(at, zone);
  return new Date(at);
}

/** How far `zone`'s wall clock is ahead of UTC at `instant`, in ms. */
function offsetAt(instant: number, zone: string): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    hourCycle: "h23",
  }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const wall = Date.UTC(
    get("year"),
    get("month") - 1,
    get("day"),
    get("hour"),
    get("minute"),
    get("second"),
  );
  return wall - Math.floor(instant / 1000) * 1000;
}

/** `path` with the non-empty `params` as its query. */
export function withQuery(path: string, params: Record<string, string | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** Blanks anything that looks like a webhook key (defence in depth: ingest already did). */
export function blankKeys(text: string): string {
  return text.replace(/whk_[A-Za-z0-9_-]{8,}/g, "whk_…");
}
