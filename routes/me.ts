/**
 * The caller's own account: who they are, their live sessions (each login on each device), and
 * their password.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { audit } from "../db/audit.ts";
import { listSessions, revokeSession, revokeUserSessions } from "../db/sessions.ts";
import { findUserByEmail, getUser, isUuid, setUserPassword } from "../db/users.ts";
import { ApiError } from "../lib/errors.ts";
import {
  hashPassword,
  MAX_PASSWORD_LENGTH,
  PasswordPolicyError,
  verifyPassword,
} from "../lib/password.ts";
import { auditActor } from "./_audit.ts";
import { authUser } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import {
  ERRORS,
  ErrorSchema,
  IdParam,
  json,
  jsonBody,
  NOT_FOUND,
  SECURED,
  validationHook,
} from "./_openapi.ts";

const Me = z.object({
  id: z.string(),
  email: z.string(),
  role: z.enum(["admin", "trader"]),
  created_at: z.string(),
  session_id: z.string().nullable().openapi({
    description: "The session of this request; null for an identity provider's token",
  }),
}).openapi("Me");

const Session = z.object({
  id: z.string(),
  created_at: z.string(),
  last_used_at: z.string(),
  expires_at: z.string(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  current: z.boolean(),
}).openapi("Session");

const PasswordBody = z.object({
  current_password: z.string().min(1).max(MAX_PASSWORD_LENGTH * 2),
  new_password: z.string().min(1).max(MAX_PASSWORD_LENGTH * 2),
}).openapi("PasswordChange");

/** The caller's account routes; mount with `app.route("/", me)`. */
export const me = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

me.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/me",
    tags: ["account"],
    summary: "The authenticated user",
    ...SECURED,
    responses: { 200: json(Me, "The user"), ...ERRORS },
  }),
  async (c) => {
    const caller = authUser(c);
    const user = await getUser(c.get("deps").db, caller.userId);
    if (!user) throw new ApiError("AUTHENTICATION_REQUIRED", "Cannot find the user any more");
    return c.json({
      id: user.id,
      email: user.email,
      role: user.role,
      created_at: user.createdAt.toISOString(),
      session_id: caller.sessionId ?? null,
    }, 200);
  },
);

me.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/sessions",
    tags: ["account"],
    summary: "The caller's live sessions, newest first",
    ...SECURED,
    responses: {
      200: json(z.object({ data: z.array(Session) }).openapi("Sessions"), "Sessions"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const { userId, sessionId } = authUser(c);
    const { db, clock } = c.get("deps");
    const rows = await listSessions(db, userId, clock.now());
    return c.json({
      data: rows.map((s) => ({
        id: s.id,
        created_at: s.createdAt.toISOString(),
        last_used_at: s.lastUsedAt.toISOString(),
        expires_at: s.expiresAt.toISOString(),
        ip: s.ip,
        user_agent: s.userAgent,
        current: s.id === sessionId,
      })),
    }, 200);
  },
);

me.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/sessions/{id}",
    tags: ["account"],
    summary: "End one of the caller's sessions (log a device out)",
    ...SECURED,
    request: { params: IdParam },
    responses: { 204: { description: "Ended" }, ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { userId } = authUser(c);
    const { db, clock } = c.get("deps");
    const ended = isUuid(id) && await db.transaction(async (tx) => {
      const done = await revokeSession(tx, {
        sessionId: id,
        userId,
        reason: "revoked",
        now: clock.now(),
      });
      if (done) {
        await audit(tx, {
          ...auditActor(c),
          action: "session.revoked",
          targetType: "session",
          targetId: id,
        });
      }
      return done;
    });
    if (!ended) throw new ApiError("NOT_FOUND", `Cannot find session "${id}"`);
    return c.body(null, 204);
  },
);

me.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/me/password",
    tags: ["account"],
    summary: "Change the caller's password; every other session is ended",
    ...SECURED,
    request: jsonBody(PasswordBody),
    responses: {
      204: { description: "Changed" },
      ...ERRORS,
      403: json(ErrorSchema, "The current password is wrong"),
    },
  }),
  async (c) => {
    const { current_password: current, new_password: next } = c.req.valid("json");
    const caller = authUser(c);
    const { db, clock } = c.get("deps");
    const user = await findUserByEmail(db, caller.email);
    if (!user?.passwordHash || !(await verifyPassword(current, user.passwordHash))) {
      await audit(db, {
        ...auditActor(c),
        action: "auth.password_changed",
        outcome: "failure",
        targetType: "user",
        targetId: caller.userId,
        data: { reason: user?.passwordHash ? "wrong_password" : "no_password" },
      });
      throw new ApiError("FORBIDDEN", "Cannot change the password: the current password is wrong");
    }
    let hash: string;
    try {
      hash = await hashPassword(next);
    } catch (error) {
      if (!(error instanceof PasswordPolicyError)) throw error;
      throw new ApiError("VALIDATION_ERROR", error.message, {
        details: [{ field: "new_password", message: error.message }],
      });
    }
    await db.transaction(async (tx) => {
      await setUserPassword(tx, caller.userId, hash);
      const ended = await revokeUserSessions(tx, {
        userId: caller.userId,
        reason: "password_changed",
        now: clock.now(),
        keep: caller.sessionId,
      });
      await audit(tx, {
        ...auditActor(c),
        action: "auth.password_changed",
        targetType: "user",
        targetId: caller.userId,
        data: { sessions_ended: ended },
      });
    });
    return c.body(null, 204);
  },
);
