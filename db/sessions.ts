/**
 * Login sessions and their rotating refresh tokens. A session is one refresh-token family: each
 * refresh uses its token up and issues the next one; presenting a used token again means it was
 * stolen (or replayed), so the whole family is revoked. Access tokens name their session
 * (`sid`), and every authenticated request checks that it is still live, so logging out, a
 * revocation or a reuse ends access at once rather than when the access token expires.
 */
import { uuidv7 } from "../lib/ids.ts";
import type { Role } from "../lib/jwt.ts";
import { generateToken, sha256 } from "../lib/tokens.ts";
import type { Db, Queryable } from "./client.ts";
import { isUuid } from "./users.ts";

/** Lifetime of a refresh token; each refresh extends the session by as much. */
export const REFRESH_TOKEN_TTL_MS = 7 * 86_400_000;

/** A session as its owner sees it. */
export interface SessionRow {
  id: string;
  userId: string;
  createdAt: Date;
  lastUsedAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  revokedReason: string | null;
  ip: string | null;
  userAgent: string | null;
}

/** The user a live session belongs to. */
export interface SessionUser {
  id: string;
  email: string;
  role: Role;
}

/** Where a login or refresh came from. */
export interface SessionOrigin {
  /** Epoch ms. */
  now: number;
  ip?: string | null;
  userAgent?: string | null;
}

/** What {@linkcode rotateRefreshToken} found. */
export type RotateResult =
  | { kind: "rotated"; session: SessionRow; refreshToken: string; user: SessionUser }
  /** The token had been used before: its family is now revoked. */
  | { kind: "reused"; sessionId: string; userId: string }
  /** Unknown, expired, or of a revoked session. */
  | { kind: "invalid" };

const COLUMNS = `s.id, s.user_id AS "userId", s.created_at AS "createdAt",
  s.last_used_at AS "lastUsedAt", s.expires_at AS "expiresAt", s.revoked_at AS "revokedAt",
  s.revoked_reason AS "revokedReason", s.ip, s.user_agent AS "userAgent"`;

/** Starts a session for `userId` and returns it with its first refresh token (in clear). */
export async function createSession(
  db: Queryable,
  userId: string,
  origin: SessionOrigin,
): Promise<{ session: SessionRow; refreshToken: string }> {
  const id = uuidv7(origin.now);
  const now = new Date(origin.now);
  const expiresAt = new Date(origin.now + REFRESH_TOKEN_TTL_MS);
  const [session] = await db.query<SessionRow & Record<string, unknown>>(
    `INSERT INTO sessions AS s (id, user_id, created_at, last_used_at, expires_at, ip, user_agent)
     VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [
      id,
      userId,
      now,
      expiresAt,
      origin.ip?.slice(0, 64) ?? null,
      origin.userAgent?.slice(0, 512) ?? null,
    ],
  );
  const refreshToken = await insertRefreshToken(db, id, now, expiresAt);
  return { session: session!, refreshToken };
}

/** The session and user a refresh token names, without using it (null when unknown). */
export async function peekRefreshToken(
  db: Queryable,
  token: string,
): Promise<{ sessionId: string; userId: string } | null> {
  const [row] = await db.query<{ sessionId: string; userId: string }>(
    `SELECT s.id AS "sessionId", s.user_id AS "userId"
     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1`,
    [await sha256(token)],
  );
  return row ?? null;
}

/**
 * Uses up `token` and issues the next one of its family. A token used a second time revokes
 * the family (and that revocation is committed, whatever the caller does next).
 */
export async function rotateRefreshToken(
  db: Db,
  token: string,
  origin: SessionOrigin,
): Promise<RotateResult> {
  const hash = await sha256(token);
  const now = new Date(origin.now);
  return await db.transaction(async (tx): Promise<RotateResult> => {
    const [row] = await tx.query<
      {
        usedAt: Date | null;
        tokenExpiresAt: Date;
        sessionId: string;
        userId: string;
        revokedAt: Date | null;
        email: string;
        role: Role;
      }
    >(
      `SELECT t.used_at AS "usedAt", t.expires_at AS "tokenExpiresAt", s.id AS "sessionId",
              s.user_id AS "userId", s.revoked_at AS "revokedAt", u.email, u.role
       FROM refresh_tokens t
       JOIN sessions s ON s.id = t.session_id
       JOIN users u ON u.id = s.user_id
       WHERE t.token_hash = $1
       FOR UPDATE OF t, s`,
      [hash],
    );
    if (!row || row.revokedAt) return { kind: "invalid" };
    if (row.usedAt) {
      await revoke(tx, row.sessionId, "refresh_token_reuse", now);
      return { kind: "reused", sessionId: row.sessionId, userId: row.userId };
    }
    if (row.tokenExpiresAt.getTime() <= origin.now) return { kind: "invalid" };
    await tx.query(`UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1`, [hash, now]);
    const expiresAt = new Date(origin.now + REFRESH_TOKEN_TTL_MS);
    const [session] = await tx.query<SessionRow & Record<string, unknown>>(
      `UPDATE sessions AS s SET last_used_at = $2, expires_at = $3,
         ip = coalesce($4, s.ip), user_agent = coalesce($5, s.user_agent)
       WHERE s.id = $1 RETURNING ${COLUMNS}`,
      [
        row.sessionId,
        now,
        expiresAt,
        origin.ip?.slice(0, 64) ?? null,
        origin.userAgent?.slice(0, 512) ?? null,
      ],
    );
    const refreshToken = await insertRefreshToken(tx, row.sessionId, now, expiresAt);
    return {
      kind: "rotated",
      session: session!,
      refreshToken,
      user: { id: row.userId, email: row.email, role: row.role },
    };
  });
}

/**
 * The user of session `sessionId` if it is live (not revoked, not expired) and belongs to
 * `userId`; null otherwise. Every request authenticated by one of our access tokens asks this,
 * so the role is always the current one.
 */
export async function sessionUser(
  db: Queryable,
  sessionId: string,
  userId: string,
  now: number,
): Promise<SessionUser | null> {
  if (!isUuid(sessionId) || !isUuid(userId)) return null;
  const [row] = await db.query<SessionUser & Record<string, unknown>>(
    `SELECT u.id, u.email, u.role FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3`,
    [sessionId, userId, new Date(now)],
  );
  return row ?? null;
}

/** The live sessions of a user, newest first. */
export function listSessions(db: Queryable, userId: string, now: number): Promise<SessionRow[]> {
  return db.query<SessionRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM sessions s
     WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
     ORDER BY s.created_at DESC`,
    [userId, new Date(now)],
  );
}

/** Revokes `userId`'s session `sessionId`; false when there is no such live session. */
export async function revokeSession(
  db: Queryable,
  input: { sessionId: string; userId: string; reason: string; now: number },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE sessions SET revoked_at = $3, revoked_reason = $4
     WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id`,
    [input.sessionId, input.userId, new Date(input.now), input.reason],
  );
  return rows.length === 1;
}

/** Revokes every live session of `userId` except `keep`; returns how many. */
export async function revokeUserSessions(
  db: Queryable,
  input: { userId: string; reason: string; now: number; keep?: string },
): Promise<number> {
  const rows = await db.query(
    `UPDATE sessions SET revoked_at = $2, revoked_reason = $3
     WHERE user_id = $1 AND revoked_at IS NULL AND ($4::uuid IS NULL OR id <> $4) RETURNING id`,
    [input.userId, new Date(input.now), input.reason, input.keep ?? null],
  );
  return rows.length;
}

async function revoke(tx: Queryable, sessionId: string, reason: string, now: Date) {
  await tx.query(
    `UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL`,
    [sessionId, now, reason],
  );
}

async function insertRefreshToken(
  db: Queryable,
  sessionId: string,
  now: Date,
  expiresAt: Date,
): Promise<string> {
  const { token, hash } = await generateToken("rt_");
  await db.query(
    `INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at)
     VALUES ($1, $2, $3, $4)`,
    [hash, sessionId, now, expiresAt],
  );
  return token;
}

/**
 * Deletes expired refresh tokens, and sessions that ended (revoked or expired) more than 30 days
 * ago (kept that long for the admins' "last login" view). Returns how many rows went.
 */
export async function purgeEndedSessions(db: Queryable, now: number): Promise<number> {
  const tokens = await db.query(
    `DELETE FROM refresh_tokens WHERE expires_at < $1 RETURNING session_id`,
    [new Date(now)],
  );
  const sessions = await db.query(
    `DELETE FROM sessions WHERE coalesce(revoked_at, expires_at) < $1 RETURNING id`,
    [new Date(now - 30 * 86_400_000)],
  );
  return tokens.length + sessions.length;
}
