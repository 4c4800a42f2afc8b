/**
 * A growing delay after failed logins, per email (known or not, so the delay reveals nothing):
 * the first {@linkcode FREE_FAILURES} failures cost nothing, then each one doubles the wait from
 * one second up to {@linkcode MAX_DELAY_S}. A success clears the count; a day without failures
 * starts it over. Kept in the database so every instance enforces the same delay.
 */
import type { Queryable } from "./client.ts";

/** Failures allowed before any delay. */
export const FREE_FAILURES = 3;
/** The longest delay, in seconds. */
export const MAX_DELAY_S = 900;

/** Seconds before a login for `email` may be tried again (0: now). */
export async function loginDelayS(db: Queryable, email: string, now: number): Promise<number> {
  const [row] = await db.query<{ blockedUntil: Date | null }>(
    `SELECT blocked_until AS "blockedUntil" FROM login_throttle WHERE email = $1`,
    [email.trim().toLowerCase()],
  );
  const until = row?.blockedUntil?.getTime() ?? 0;
  return until > now ? Math.ceil((until - now) / 1000) : 0;
}

/** Counts a failed login for `email`; returns the delay (seconds) it now imposes. */
export async function recordLoginFailure(
  db: Queryable,
  email: string,
  now: number,
): Promise<number> {
  const [row] = await db.query<{ failures: number }>(
    `INSERT INTO login_throttle AS t (email, failures, last_failure_at) VALUES ($1, 1, $2)
     ON CONFLICT (email) DO UPDATE SET
       failures = CASE WHEN t.last_failure_at < $2::timestamptz - interval '1 day' THEN 1
                       ELSE t.failures + 1 END,
       last_failure_at = $2
     RETURNING failures`,
    [email.trim().toLowerCase().slice(0, 254), new Date(now)],
  );
  const delayS = delayAfter(row!.failures);
  if (delayS > 0) {
    await db.query(`UPDATE login_throttle SET blocked_until = $2 WHERE email = $1`, [
      email.trim().toLowerCase().slice(0, 254),
      new Date(now + delayS * 1000),
    ]);
  }
  return delayS;
}

/** Forgets the failures of `email` (after a successful login). */
export async function clearLoginFailures(db: Queryable, email: string): Promise<void> {
  await db.query(`DELETE FROM login_throttle WHERE email = $1`, [email.trim().toLowerCase()]);
}

/** Deletes counts untouched for a day (the ingest sweep calls it). */
export async function purgeLoginThrottle(db: Queryable, now: number): Promise<number> {
  const rows = await db.query(
    `DELETE FROM login_throttle WHERE last_failure_at < $1 RETURNING email`,
    [new Date(now - 86_400_000)],
  );
  return rows.length;
}

/** The delay, in seconds, after `failures` consecutive failures. */
export function delayAfter(failures: number): number {
  if (failures < FREE_FAILURES) return 0;
  return Math.min(MAX_DELAY_S, 2 ** (failures - FREE_FAILURES));
}
