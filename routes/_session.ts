/**
 * Starting and ending sessions over HTTP. Token mode (the API) answers with the access and
 * refresh tokens in the body; cookie mode (the dashboard) sets them as httpOnly cookies and
 * answers with the CSRF token instead, so no script on the page ever holds a session token.
 */
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { createSession, REFRESH_TOKEN_TTL_MS, type SessionUser } from "../db/sessions.ts";
import { ACCESS_TOKEN_TTL_S, signAccessToken } from "../lib/jwt.ts";
import { ACCESS_COOKIE, CSRF_COOKIE, csrfToken, REFRESH_COOKIE } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import { clientIp } from "./_middleware.ts";

/** Where the refresh cookie is sent: the refresh and logout routes only. */
const REFRESH_COOKIE_PATH = "/api/v1/auth";

/** How a session's tokens travel. */
export const SessionMode = z.enum(["token", "cookie"]).default("token").openapi({
  description: "`token`: tokens in the body (API clients). `cookie`: httpOnly cookies " +
    "and a CSRF token in the body (the dashboard)",
});

/** The user as login and `/api/v1/me` show them. */
export const UserSchema = z.object({
  id: z.string(),
  email: z.string(),
  role: z.enum(["admin", "trader"]),
}).openapi("User");

/** The answer of login, setup and refresh. */
export const SessionResponse = z.object({
  token_type: z.enum(["Bearer", "cookie"]),
  access_token: z.string().optional().openapi({ description: "Token mode only" }),
  refresh_token: z.string().optional().openapi({ description: "Token mode only; used once" }),
  expires_in: z.number().int().openapi({ example: ACCESS_TOKEN_TTL_S }),
  refresh_expires_in: z.number().int(),
  csrf_token: z.string().optional().openapi({
    description: "Cookie mode only: send it as X-CSRF-Token on every change",
  }),
  user: UserSchema,
}).openapi("Session");

/** Starts a session for `user` and builds the answer in `mode`. */
export async function startSession(
  c: Context<AppEnv>,
  user: SessionUser,
  mode: "token" | "cookie",
): Promise<z.infer<typeof SessionResponse>> {
  const { db, clock } = c.get("deps");
  const { session, refreshToken } = await createSession(db, user.id, {
    now: clock.now(),
    ip: clientIp(c),
    userAgent: c.req.header("user-agent"),
  });
  c.set("userId", user.id);
  c.set("sessionId", session.id);
  return await sessionAnswer(c, user, session.id, refreshToken, mode);
}

/** Signs an access token for `sessionId` and answers in `mode` (cookies set in cookie mode). */
export async function sessionAnswer(
  c: Context<AppEnv>,
  user: SessionUser,
  sessionId: string,
  refreshToken: string,
  mode: "token" | "cookie",
): Promise<z.infer<typeof SessionResponse>> {
  const { config, clock } = c.get("deps");
  const accessToken = await signAccessToken(
    { userId: user.id, role: user.role, sessionId },
    { secret: config.jwtSecret, now: clock.now(), ttlS: ACCESS_TOKEN_TTL_S },
  );
  c.header("Cache-Control", "no-store");
  const refreshS = REFRESH_TOKEN_TTL_MS / 1000;
  const base = {
    expires_in: ACCESS_TOKEN_TTL_S,
    refresh_expires_in: refreshS,
    user: { id: user.id, email: user.email, role: user.role },
  };
  if (mode === "token") {
    return {
      token_type: "Bearer",
      access_token: accessToken,
      refresh_token: refreshToken,
      ...base,
    };
  }
  const csrf = await csrfToken(config.jwtSecret, sessionId);
  const secure = secureCookies(c);
  setCookie(c, ACCESS_COOKIE, accessToken, {
    httpOnly: true,
    secure,
    sameSite: "Lax",
    path: "/",
    maxAge: ACCESS_TOKEN_TTL_S,
  });
  setCookie(c, REFRESH_COOKIE, refreshToken, {
    httpOnly: true,
    secure,
    sameSite: "Strict",
    path: REFRESH_COOKIE_PATH,
    maxAge: refreshS,
  });
  setCookie(c, CSRF_COOKIE, csrf, { secure, sameSite: "Strict", path: "/", maxAge: refreshS });
  return { token_type: "cookie", csrf_token: csrf, ...base };
}

/** Clears the session cookies. */
export function clearSessionCookies(c: Context<AppEnv>): void {
  const secure = secureCookies(c);
  deleteCookie(c, ACCESS_COOKIE, { path: "/", secure });
  deleteCookie(c, REFRESH_COOKIE, { path: REFRESH_COOKIE_PATH, secure });
  deleteCookie(c, CSRF_COOKIE, { path: "/", secure });
}

/**
 * Cookies are `Secure` in production and staging, and whenever the request came over HTTPS;
 * plain-HTTP development on localhost keeps working.
 */
function secureCookies(c: Context<AppEnv>): boolean {
  const { config } = c.get("deps");
  if (config.env === "production" || config.env === "staging") return true;
  if (config.trustProxy && c.req.header("x-forwarded-proto") === "https") return true;
  return new URL(c.req.url).protocol === "https:";
}
