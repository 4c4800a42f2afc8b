/**
 * Sessions: the one-time setup of the first admin, login, refresh and logout under
 * `/api/v1/auth/*` (limited per client address, see `_middleware.ts`). Failed logins are
 * audited and slow the next attempts for that email down (db/login_throttle.ts).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { audit } from "../db/audit.ts";
import { clearLoginFailures, loginDelayS, recordLoginFailure } from "../db/login_throttle.ts";
import { peekRefreshToken, revokeSession, rotateRefreshToken } from "../db/sessions.ts";
import {
  createUser,
  findUserByEmail,
  InvalidEmailError,
  SetupDoneError,
  setupRequired,
} from "../db/users.ts";
import { ApiError } from "../lib/errors.ts";
import {
  MAX_PASSWORD_LENGTH,
  PasswordPolicyError,
  PBKDF2_ITERATIONS,
  verifyPassword,
} from "../lib/password.ts";
import { auditActor } from "./_audit.ts";
import { ACCESS_COOKIE, checkCsrf, isAllowedOrigin, REFRESH_COOKIE, requireUser } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import { clientIp } from "./_middleware.ts";
import { ERRORS, ErrorSchema, json, jsonBody, validationHook } from "./_openapi.ts";
import {
  clearSessionCookies,
  sessionAnswer,
  SessionMode,
  SessionResponse,
  startSession,
} from "./_session.ts";

// Verified when the email is unknown, so that case costs the same as a wrong password.
const DUMMY_HASH = `pbkdf2_sha256$${PBKDF2_ITERATIONS}$c2FsdHNhbHRzYWx0c2FsdA==$` +
  "ZHVtbXlkdW1teWR1bW15ZHVtbXlkdW1teWR1bW15ZHU=";

const WRONG_CREDENTIALS = "Cannot log in: the email or password is wrong";

const Email = z.string().trim().min(3).max(254).openapi({ example: "trader@example.com" });

const LoginBody = z.object({
  email: Email,
  password: z.string().min(1).max(MAX_PASSWORD_LENGTH * 2),
  mode: SessionMode,
}).openapi("LoginRequest");

const SetupBody = z.object({
  email: Email,
  password: z.string().min(1).max(MAX_PASSWORD_LENGTH * 2),
  mode: SessionMode,
}).openapi("SetupRequest");

const RefreshBody = z.object({
  refresh_token: z.string().min(1).max(200).optional().openapi({
    description: "Token mode; omit to refresh the dashboard's cookie session",
  }),
}).openapi("RefreshRequest");

const TOO_MANY = { 429: json(ErrorSchema, "Too many requests or failed logins; see Retry-After") };

/** The auth routes; mount with `app.route("/", auth)`. */
export const auth = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

auth.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/auth/setup",
    tags: ["auth"],
    summary: "Whether the one-time setup of the first admin is still open",
    responses: {
      200: json(z.object({ setup_required: z.boolean() }).openapi("SetupStatus"), "Status"),
      ...TOO_MANY,
    },
  }),
  async (c) => c.json({ setup_required: await setupRequired(c.get("deps").db) }, 200),
);

auth.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/auth/setup",
    tags: ["auth"],
    summary: "Create the first admin (only while no user exists) and log in",
    request: jsonBody(SetupBody),
    responses: {
      201: json(SessionResponse, "The admin, logged in"),
      400: json(ErrorSchema, "Invalid email or password"),
      403: json(ErrorSchema, "Origin not allowed"),
      409: json(ErrorSchema, "Setup is done already"),
      ...TOO_MANY,
    },
  }),
  async (c) => {
    const { email, password, mode } = c.req.valid("json");
    checkLoginOrigin(c);
    const { db } = c.get("deps");
    let user;
    try {
      user = await createUser(db, {
        email,
        password,
        onlyFirst: true,
        actor: auditActor(c, { actorId: null, actor: email }),
      });
    } catch (error) {
      if (error instanceof SetupDoneError) throw new ApiError("CONFLICT", error.message);
      if (error instanceof InvalidEmailError || error instanceof PasswordPolicyError) {
        throw new ApiError("VALIDATION_ERROR", `Cannot set up: ${error.message}`, {
          details: [{
            field: error instanceof InvalidEmailError ? "email" : "password",
            message: error.message,
          }],
        });
      }
      throw error;
    }
    const body = await startSession(c, user, mode);
    await audit(db, {
      ...auditActor(c, { actorId: user.id, actor: user.email }),
      action: "auth.setup",
      targetType: "user",
      targetId: user.id,
      data: { session_id: c.get("sessionId") },
    });
    return c.json(body, 201);
  },
);

auth.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/auth/login",
    tags: ["auth"],
    summary: "Log in with email and password",
    request: jsonBody(LoginBody),
    responses: {
      200: json(SessionResponse, "A session"),
      400: json(ErrorSchema, "Invalid body"),
      401: json(ErrorSchema, "Wrong email or password"),
      403: json(ErrorSchema, "Origin not allowed"),
      ...TOO_MANY,
    },
  }),
  async (c) => {
    const { email, password, mode } = c.req.valid("json");
    checkLoginOrigin(c);
    const { db, clock, log } = c.get("deps");
    const now = clock.now();
    const waitS = await loginDelayS(db, email, now);
    if (waitS > 0) {
      await audit(db, {
        ...auditActor(c, { actorId: null, actor: email }),
        action: "auth.login",
        outcome: "failure",
        data: { reason: "throttled", retry_after_s: waitS },
      });
      throw new ApiError(
        "RATE_LIMITED",
        `Cannot log in yet: too many failed attempts for this email; retry in ${waitS} s`,
        { headers: { "Retry-After": String(waitS) } },
      );
    }
    const user = await findUserByEmail(db, email);
    const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (!user || !user.passwordHash || !ok) {
      const delayS = await recordLoginFailure(db, email, now);
      await audit(db, {
        ...auditActor(c, { actorId: user?.id ?? null, actor: email }),
        action: "auth.login",
        outcome: "failure",
        data: { reason: user ? "wrong_password" : "unknown_email", delay_s: delayS },
      });
      log.info("Login refused", { request_id: c.get("requestId"), delay_s: delayS });
      throw new ApiError("AUTHENTICATION_REQUIRED", WRONG_CREDENTIALS, {
        headers: delayS > 0 ? { "Retry-After": String(delayS) } : undefined,
      });
    }
    await clearLoginFailures(db, email);
    const body = await startSession(c, user, mode);
    await audit(db, {
      ...auditActor(c, { actorId: user.id, actor: user.email }),
      action: "auth.login",
      data: { session_id: c.get("sessionId"), mode },
    });
    return c.json(body, 200);
  },
);

auth.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/auth/refresh",
    tags: ["auth"],
    summary: "Trade a refresh token (body or cookie) for a new access and refresh token",
    description: "Each refresh token works once. Using one again ends its whole session: it " +
      'means the token was copied. Body (optional, JSON): `{"refresh_token"}`; without ' +
      "it the `te_refresh` cookie is used, with `X-CSRF-Token`.",
    responses: {
      200: json(SessionResponse, "The renewed session"),
      401: json(ErrorSchema, "Unknown, expired, reused or revoked refresh token"),
      403: json(ErrorSchema, "Cookie refresh without the CSRF token"),
      ...TOO_MANY,
    },
  }),
  async (c) => {
    const fromBody = await optionalJson(c, RefreshBody);
    const { db, clock, log } = c.get("deps");
    let token = fromBody?.refresh_token;
    let mode: "token" | "cookie" = "token";
    if (token === undefined) {
      token = getCookie(c, REFRESH_COOKIE);
      mode = "cookie";
      if (token === undefined) throw refreshRefused("no refresh token was sent");
      const found = await peekRefreshToken(db, token);
      if (!found) throw refreshRefused("the refresh token is unknown");
      await checkCsrf(c, found.sessionId);
    }
    const result = await rotateRefreshToken(db, token, {
      now: clock.now(),
      ip: clientIp(c),
      userAgent: c.req.header("user-agent"),
    });
    if (result.kind === "reused") {
      await audit(db, {
        ...auditActor(c, { actorId: result.userId, actor: "unknown" }),
        action: "auth.refresh_reuse",
        outcome: "failure",
        targetType: "session",
        targetId: result.sessionId,
      });
      log.warning("Refresh token reused; session revoked", {
        request_id: c.get("requestId"),
        user_id: result.userId,
        session_id: result.sessionId,
      });
      if (mode === "cookie") clearSessionCookies(c);
      throw refreshRefused("the refresh token was used before, so its session has been ended");
    }
    if (result.kind === "invalid") {
      if (mode === "cookie") clearSessionCookies(c);
      throw refreshRefused("the refresh token is unknown, expired or revoked");
    }
    c.set("userId", result.user.id);
    c.set("sessionId", result.session.id);
    return c.json(
      await sessionAnswer(c, result.user, result.session.id, result.refreshToken, mode),
      200,
    );
  },
);

auth.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/auth/logout",
    tags: ["auth"],
    summary: "End the caller's session (its access and refresh tokens stop working)",
    description: "Proof of the session is the access token (bearer or cookie) or, once that " +
      'has expired, the refresh token (JSON body `{"refresh_token"}`, or the cookie with ' +
      "X-CSRF-Token).",
    security: [{ Bearer: [] }],
    responses: {
      204: { description: "Logged out" },
      ...ERRORS,
      403: json(ErrorSchema, "Cookie logout without the CSRF token"),
      ...TOO_MANY,
    },
  }),
  async (c) => {
    const { db, clock } = c.get("deps");
    const session = await sessionToEnd(c);
    if (session) {
      await db.transaction(async (tx) => {
        const ended = await revokeSession(tx, { ...session, reason: "logout", now: clock.now() });
        if (!ended) return;
        await audit(tx, {
          ...auditActor(c, { actorId: session.userId, actor: c.get("email") ?? "unknown" }),
          action: "auth.logout",
          targetType: "session",
          targetId: session.sessionId,
        });
      });
    }
    clearSessionCookies(c);
    return c.body(null, 204);
  },
);

/**
 * The session a logout proves: the access token's, else the refresh token's. Null for an
 * identity provider's token (no session of ours); 401 when nothing proves a session.
 */
async function sessionToEnd(
  c: Context<AppEnv>,
): Promise<{ sessionId: string; userId: string } | null> {
  const { db } = c.get("deps");
  const fromBody = (await optionalJson(c, RefreshBody))?.refresh_token;
  if (fromBody !== undefined) {
    const found = await peekRefreshToken(db, fromBody);
    if (!found) throw refreshRefused("the refresh token is unknown");
    return found;
  }
  let accessError: unknown;
  if (c.req.header("authorization") !== undefined || getCookie(c, ACCESS_COOKIE) !== undefined) {
    try {
      await requireUser(c, () => Promise.resolve());
      const sessionId = c.get("sessionId");
      return sessionId ? { sessionId, userId: c.get("userId")! } : null;
    } catch (error) {
      accessError = error;
    }
  }
  const cookie = getCookie(c, REFRESH_COOKIE);
  if (cookie === undefined) {
    throw accessError ??
      new ApiError("AUTHENTICATION_REQUIRED", "Cannot log out: send the access or refresh token");
  }
  const found = await peekRefreshToken(db, cookie);
  if (!found) throw refreshRefused("the refresh token is unknown");
  await checkCsrf(c, found.sessionId);
  return found;
}

/** Login and setup from a browser must come from our own pages (login CSRF). */
function checkLoginOrigin(c: Context<AppEnv>): void {
  const origin = c.req.header("origin");
  if (origin !== undefined && !isAllowedOrigin(c, origin)) {
    throw new ApiError("FORBIDDEN", `Cannot log in: origin "${origin}" is not allowed`);
  }
}

function refreshRefused(reason: string): ApiError {
  return new ApiError("AUTHENTICATION_REQUIRED", `Cannot refresh the session: ${reason}`);
}

/** The body parsed by `schema` when there is one; undefined for an empty body. */
async function optionalJson<T extends z.ZodType>(
  c: Context<AppEnv>,
  schema: T,
): Promise<z.infer<T> | undefined> {
  const text = await c.req.text();
  if (text.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError("VALIDATION_ERROR", "Cannot read the request body: it is not JSON");
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) validationHook({ success: false, error: parsed.error, target: "json" });
  return parsed.data as z.infer<T>;
}
