/**
 * Leases: exclusive, expiring ownership of a named piece of work across instances (an account's
 * executor, a cron tick). Acquiring succeeds when the lease is free, lapsed, or already ours;
 * the database's clock decides, so instances' clocks need not agree.
 */
import type { Queryable } from "./client.ts";

/** Who holds a lease, and until when. */
export interface LeaseHolder {
  owner: string;
  expiresAt: Date;
}

/**
 * Takes (or renews) lease `name` for `owner` for `ttlMs`. Returns null when it is ours now, or
 * the live holder when another instance has it.
 */
export async function acquireLease(
  db: Queryable,
  name: string,
  owner: string,
  ttlMs: number,
): Promise<LeaseHolder | null> {
  const [row] = await db.query<{ owner: string; expiresAt: Date }>(
    `INSERT INTO leases AS l (name, owner, acquired_at, expires_at)
     VALUES ($1, $2, now(), now() + make_interval(secs => $3::float8 / 1000))
     ON CONFLICT (name) DO UPDATE SET
       owner = excluded.owner,
       acquired_at = CASE WHEN l.owner = excluded.owner THEN l.acquired_at ELSE now() END,
       expires_at = excluded.expires_at
     WHERE l.owner = excluded.owner OR l.expires_at < now()
     RETURNING owner, expires_at AS "expiresAt"`,
    [name, owner, ttlMs],
  );
  if (row) return null;
  const [holder] = await db.query<{ owner: string; expiresAt: Date }>(
    `SELECT owner, expires_at AS "expiresAt" FROM leases WHERE name = $1`,
    [name],
  );
  // Released between the two statements: free now, but not ours; the caller may try again.
  return holder ?? { owner: "", expiresAt: new Date(0) };
}

/**
 * Renews every lease of `owner` among `names` for `ttlMs`; returns the names it still holds
 * (a name missing from the answer was lost: it lapsed and another instance took it).
 */
export async function renewLeases(
  db: Queryable,
  names: readonly string[],
  owner: string,
  ttlMs: number,
): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const rows = await db.query<{ name: string }>(
    `UPDATE leases SET expires_at = now() + make_interval(secs => $3::float8 / 1000)
     WHERE name = ANY($1::text[]) AND owner = $2
     RETURNING name`,
    [names, owner, ttlMs],
  );
  return new Set(rows.map((r) => r.name));
}

/** Gives up leases of `owner` (all of them when `names` is omitted), so a survivor need not wait. */
export async function releaseLeases(
  db: Queryable,
  owner: string,
  names?: readonly string[],
): Promise<number> {
  const rows = await db.query(
    `DELETE FROM leases WHERE owner = $1 AND ($2::text[] IS NULL OR name = ANY($2::text[]))
     RETURNING name`,
    [owner, names ?? null],
  );
  return rows.length;
}

/**
 * Claims the tick of scheduled job `job` due at `tickAt` for `owner`: true for exactly one of
 * the instances that ask (every instance's `Deno.cron` fires; one of them does the work). The
 * claim is kept a day, then purged by {@linkcode purgeLapsedLeases}.
 */
export async function claimTick(
  db: Queryable,
  job: string,
  tickAt: Date,
  owner: string,
): Promise<boolean> {
  const rows = await db.query(
    `INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, now() + interval '1 day')
     ON CONFLICT (name) DO NOTHING RETURNING name`,
    [`tick:${job}:${tickAt.toISOString()}`, owner],
  );
  return rows.length === 1;
}

/** Deletes leases and tick claims that lapsed more than an hour ago. */
export async function purgeLapsedLeases(db: Queryable): Promise<number> {
  const rows = await db.query(
    `DELETE FROM leases WHERE expires_at < now() - interval '1 hour' RETURNING name`,
  );
  return rows.length;
}
