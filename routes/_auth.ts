/**
 * Authentication of API requests: `Authorization: Bearer <access token>` (lib/jwt.ts). Routes
 * that need a user put {@linkcode requireUser} in their `middleware` and read the caller with
 * {@linkcode authUser}.
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { ApiError } from "../lib/errors.ts";
import { InvalidTokenError, type Role, verifyAccessToken } from "../lib/jwt.ts";
import type { AppEnv } from "./_env.ts";

/**
 * {@linkcode AppEnv} plus the caller's role. Once `AppEnv` declares `role` itself this is the
 * same type.
 */
export type AuthEnv = AppEnv & { Variables: { role?: Role } };

/** The authenticated caller. */
export interface AuthUser {
  userId: string;
  role: Role;
}

const BEARER = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)\s*$/i;

/**
 * Requires a valid access token; sets `userId` and `role` on the context, or throws
 * AUTHENTICATION_REQUIRED (the same message for a missing, malformed, forged or expired token).
 */
export const requireUser = createMiddleware<AuthEnv>(async (c, next) => {
  const match = BEARER.exec(c.req.header("authorization") ?? "");
  if (!match) {
    throw new ApiError(
      "AUTHENTICATION_REQUIRED",
      "Cannot authenticate the request: send Authorization: Bearer <access token>",
      { headers: { "WWW-Authenticate": 'Bearer realm="trendedge"' } },
    );
  }
  const { config, clock } = c.get("deps");
  let user: AuthUser;
  try {
    user = await verifyAccessToken(match[1]!, { secret: config.jwtSecret, now: clock.now() });
  } catch (error) {
    if (!(error instanceof InvalidTokenError)) throw error;
    throw new ApiError(
      "AUTHENTICATION_REQUIRED",
      "Cannot authenticate the request: the access token is invalid or expired",
      {
        headers: { "WWW-Authenticate": 'Bearer realm="trendedge", error="invalid_token"' },
        cause: error,
      },
    );
  }
  c.set("userId", user.userId);
  c.set("role", user.role);
  await next();
});

/** The caller that {@linkcode requireUser} authenticated; throws when there is none. */
export function authUser(c: Context<AuthEnv>): AuthUser {
  const userId = c.get("userId");
  const role = c.get("role");
  if (!userId || !role) {
    throw new ApiError("AUTHENTICATION_REQUIRED", "Cannot authenticate the request: no user");
  }
  return { userId, role };
}
