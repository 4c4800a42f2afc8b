/**
 * Authentication of API requests. A caller proves who they are with one of:
 *
 * - `Authorization: Bearer <token>`: our access token (lib/jwt.ts), or a token of the configured
 *   external identity provider (lib/oidc.ts), told apart by the token's issuer;
 * - the dashboard's `te_access` cookie (httpOnly), which holds our access token. State changes
 *   authenticated by the cookie must also carry `X-CSRF-Token`, the HMAC of the session that
 *   login handed out (and left readable in the `te_csrf` cookie): a cross-site form can send the
 *   cookie but cannot read or forge that value.
 *
 * Our tokens name their session; the session must still be live and the role is read from the
 * database on every request, so a logout, a revocation or a role change takes effect at once.
 */
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { userForExternalIdentity } from "../db/identities.ts";
import { sessionUser } from "../db/sessions.ts";
import { ApiError } from "../lib/errors.ts";
import { InvalidTokenError, JWT_ISSUER, type Role, verifyAccessToken } from "../lib/jwt.ts";
import { peekIssuer } from "../lib/oidc.ts";
import { timingSafeEqual } from "../lib/secure_compare.ts";
import { hmacSha256 } from "../lib/tokens.ts";
import type { AppDeps, AppEnv } from "./_env.ts";
import { clientIp } from "./_middleware.ts";

/** The Hono environment of authenticated routes (the same as {@linkcode AppEnv}). */
export type AuthEnv = AppEnv;

/** The authenticated caller. */
export interface AuthUser {
  userId: string;
  role: Role;
  email: string;
  /** Absent for an external identity provider's token. */
  sessionId?: string;
}

/** Cookie holding the access token (httpOnly). */
export const ACCESS_COOKIE = "te_access";
/** Cookie holding the refresh token (httpOnly, sent to `/api/v1/auth` only). */
export const REFRESH_COOKIE = "te_refresh";
/** Cookie holding the CSRF token (readable by the dashboard's scripts). */
export const CSRF_COOKIE = "te_csrf";
/** The header that must echo the CSRF token on cookie-authenticated state changes. */
export const CSRF_HEADER = "x-csrf-token";
/** Tokens longer than this are refused unread. */
export const MAX_TOKEN_LENGTH = 8192;

const BEARER = /^Bearer\s+(\S+)\s*$/i;
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The CSRF token of a session: HMAC(JWT_SECRET, session id). */
export function csrfToken(secret: string, sessionId: string): Promise<string> {
  return hmacSha256(secret, `csrf:${sessionId}`);
}

/**
 * Requires an authenticated caller; sets `userId`, `role`, `email`, `sessionId` and `authVia`.
 * A missing, malformed, forged or expired token, or an ended session, is 401 with one message;
 * a cookie-authenticated state change without the right CSRF token is 403.
 */
export const requireUser = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("authorization");
  let token: string | undefined;
  let via: "bearer" | "cookie";
  if (header !== undefined) {
    token = BEARER.exec(header)?.[1];
    via = "bearer";
  } else {
    token = getCookie(c, ACCESS_COOKIE);
    via = "cookie";
  }
  if (!token) {
    throw new ApiError(
      "AUTHENTICATION_REQUIRED",
      "Cannot authenticate the request: send Authorization: Bearer <access token>",
      { headers: { "WWW-Authenticate": 'Bearer realm="trendedge"' } },
    );
  }
  const user = await authenticate(c, token, via);
  if (via === "cookie" && !SAFE_METHODS.has(c.req.method)) {
    await checkCsrf(c, user.sessionId!);
  }
  c.set("userId", user.userId);
  c.set("role", user.role);
  c.set("email", user.email);
  c.set("sessionId", user.sessionId);
  c.set("authVia", via);
  await next();
});

/** Requires an admin (after {@linkcode requireUser}); anyone else gets 403. */
export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  if (c.get("role") !== "admin") {
    throw new ApiError("FORBIDDEN", `Cannot ${c.req.method} ${c.req.path}: admins only`);
  }
  await next();
});

/** The caller that {@linkcode requireUser} authenticated; throws when there is none. */
export function authUser(c: Context<AppEnv>): AuthUser {
  const userId = c.get("userId");
  const role = c.get("role");
  const email = c.get("email");
  if (!userId || !role || email === undefined) {
    throw new ApiError("AUTHENTICATION_REQUIRED", "Cannot authenticate the request: no user");
  }
  return { userId, role, email, sessionId: c.get("sessionId") };
}

/**
 * Checks that a state change comes from our own pages: the `X-CSRF-Token` header must equal
 * the session's CSRF token, and an `Origin` header, when sent, must be ours or an allowed one.
 */
export async function checkCsrf(c: Context<AppEnv>, sessionId: string): Promise<void> {
  const origin = c.req.header("origin");
  if (origin !== undefined && !isAllowedOrigin(c, origin)) {
    throw new ApiError("FORBIDDEN", `Cannot accept the request: origin "${origin}" not allowed`);
  }
  const sent = c.req.header(CSRF_HEADER) ?? "";
  const expected = await csrfToken(c.get("deps").config.jwtSecret, sessionId);
  if (!timingSafeEqual(sent, expected)) {
    throw new ApiError(
      "FORBIDDEN",
      "Cannot accept the request: the X-CSRF-Token header is missing or wrong",
    );
  }
}

/** True when `origin` is this server's own or one of CORS_ORIGINS. */
export function isAllowedOrigin(c: Context<AppEnv>, origin: string): boolean {
  const { config } = c.get("deps");
  if (config.corsOrigins.includes(origin)) return true;
  if (config.publicUrl && new URL(config.publicUrl).origin === origin) return true;
  const host = c.req.header("host");
  if (!host) return false;
  return origin === `http://${host}` || origin === `https://${host}`;
}

function invalid(cause?: unknown): ApiError {
  return new ApiError(
    "AUTHENTICATION_REQUIRED",
    "Cannot authenticate the request: the access token is invalid or expired",
    {
      headers: { "WWW-Authenticate": 'Bearer realm="trendedge", error="invalid_token"' },
      cause,
    },
  );
}

/** What {@linkcode authenticateToken} needs from the running process. */
export type TokenAuthDeps = Pick<AppDeps, "config" | "clock" | "db" | "externalAuth" | "log">;

/** Options of {@linkcode authenticateToken}. */
export interface TokenAuthOptions {
  /** Where the token came from: only a bearer token may be an external provider's. */
  via: "bearer" | "cookie";
  /** Where the request came from, for the audit log of an auto-provisioned user. */
  origin?: { ip?: string | null; userAgent?: string | null; requestId?: string | null };
}

/**
 * The user a token string stands for, checked as every request is: our JWT (signature, expiry)
 * and its session still live, or an external identity provider's token mapped to a local user.
 * Throws an AUTHENTICATION_REQUIRED {@linkcode ApiError} when the token is not (or no longer)
 * good; any other error means the check itself failed (e.g. the database is down).
 *
 * @example
 * const user = await authenticateToken(deps, token, { via: "bearer" });
 */
export async function authenticateToken(
  deps: TokenAuthDeps,
  token: string,
  options: TokenAuthOptions,
): Promise<AuthUser> {
  if (token.length > MAX_TOKEN_LENGTH) throw invalid();
  const { config, clock, db, externalAuth, log } = deps;
  const now = clock.now();
  const issuer = peekIssuer(token);
  if (
    externalAuth && options.via === "bearer" && issuer !== JWT_ISSUER &&
    issuer === externalAuth.issuer
  ) {
    let identity;
    try {
      identity = await externalAuth.verify(token, now);
    } catch (error) {
      if (!(error instanceof InvalidTokenError)) throw error;
      throw invalid(error);
    }
    const user = await userForExternalIdentity(db, identity, {
      autoProvision: config.auth.oidc?.autoProvision ?? false,
      now,
      origin: options.origin,
    });
    if (!user) {
      log.info("External identity has no local user", {
        request_id: options.origin?.requestId ?? null,
        issuer: identity.issuer,
      });
      throw invalid();
    }
    return { userId: user.id, role: user.role, email: user.email };
  }
  let claims;
  try {
    claims = await verifyAccessToken(token, { secret: config.jwtSecret, now });
  } catch (error) {
    if (!(error instanceof InvalidTokenError)) throw error;
    throw invalid(error);
  }
  const user = await sessionUser(db, claims.sessionId, claims.userId, now);
  if (!user) throw invalid();
  return { userId: user.id, role: user.role, email: user.email, sessionId: claims.sessionId };
}

function authenticate(
  c: Context<AppEnv>,
  token: string,
  via: "bearer" | "cookie",
): Promise<AuthUser> {
  return authenticateToken(c.get("deps"), token, {
    via,
    origin: {
      ip: clientIp(c),
      userAgent: c.req.header("user-agent"),
      requestId: c.get("requestId"),
    },
  });
}

/**
 * Requires the operator key (OPERATOR_API_KEY) in `X-API-Key`, or as `Authorization: Bearer`
 * (how Prometheus sends one); `action` completes the error message ("Cannot show metrics…").
 */
export function requireOperatorKey(c: Context<AppEnv>, action: string): void {
  const given = c.req.header("x-api-key") ??
    c.req.header("authorization")?.replace(/^Bearer\s+/i, "");
  if (!given || !timingSafeEqual(given, c.get("deps").config.operatorApiKey)) {
    throw new ApiError(
      "AUTHENTICATION_REQUIRED",
      `Cannot ${action}: a valid operator key is required in X-API-Key`,
    );
  }
}
