/**
 * Administration, for admins only: users and their roles, and the audit log. A trader calling
 * these gets 403.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { AUDIT_ACTIONS, listAudit } from "../db/audit.ts";
import {
  createUser,
  DuplicateEmailError,
  InvalidEmailError,
  LastAdminError,
  listUsers,
  setUserRole,
} from "../db/users.ts";
import { ApiError } from "../lib/errors.ts";
import { MAX_PASSWORD_LENGTH, PasswordPolicyError } from "../lib/password.ts";
import { auditActor } from "./_audit.ts";
import { requireAdmin, requireUser } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import {
  ERRORS,
  ErrorSchema,
  IdParam,
  json,
  jsonBody,
  NOT_FOUND,
  validationHook,
} from "./_openapi.ts";

const ADMIN = {
  middleware: [requireUser, requireAdmin],
  security: [{ Bearer: [] }],
};
const FORBIDDEN = { 403: json(ErrorSchema, "Admins only") };
const MAX_AUDIT_PAGE = 200;

const Role = z.enum(["admin", "trader"]);

const AdminUser = z.object({
  id: z.string(),
  email: z.string(),
  role: Role,
  created_at: z.string(),
  last_login_at: z.string().nullable(),
  active_sessions: z.number().int(),
}).openapi("AdminUser");

const NewUserBody = z.object({
  email: z.string().trim().min(3).max(254),
  password: z.string().min(1).max(MAX_PASSWORD_LENGTH * 2).nullable().openapi({
    description: "Null: no password login (the user signs in through the identity provider)",
  }),
  role: Role.default("trader"),
}).openapi("NewUser");

const RoleBody = z.object({ role: Role }).openapi("RoleChange");

const AuditQuery = z.object({
  actor_id: z.string().uuid().optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  outcome: z.enum(["success", "failure"]).optional(),
  limit: z.string().regex(/^\d+$/, "Must be a whole number").refine(
    (v) => Number(v) >= 1 && Number(v) <= MAX_AUDIT_PAGE,
    `Must be between 1 and ${MAX_AUDIT_PAGE}`,
  ).optional(),
  cursor: z.string().regex(/^\d{1,18}$/, "Must be a cursor").optional().openapi({
    description: "`next_cursor` of the previous page",
  }),
});

const AuditEntry = z.object({
  id: z.number().int(),
  at: z.string(),
  actor_id: z.string().nullable(),
  actor: z.string(),
  action: z.string(),
  outcome: z.enum(["success", "failure"]),
  target_type: z.string().nullable(),
  target_id: z.string().nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  request_id: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
}).openapi("AuditEntry");

/** The admin routes; mount with `app.route("/", admin)`. */
export const admin = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

admin.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/admin/users",
    tags: ["admin"],
    summary: "Every user with their role, last login and live sessions",
    ...ADMIN,
    responses: {
      200: json(z.object({ data: z.array(AdminUser) }).openapi("AdminUsers"), "Users"),
      ...ERRORS,
      ...FORBIDDEN,
    },
  }),
  async (c) => {
    const { db, clock } = c.get("deps");
    const rows = await listUsers(db, clock.now());
    return c.json({
      data: rows.map((u) => ({
        id: u.id,
        email: u.email,
        role: u.role,
        created_at: u.createdAt.toISOString(),
        last_login_at: u.lastLoginAt?.toISOString() ?? null,
        active_sessions: u.activeSessions,
      })),
    }, 200);
  },
);

admin.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/admin/users",
    tags: ["admin"],
    summary: "Create a user (with their paper account)",
    ...ADMIN,
    request: jsonBody(NewUserBody),
    responses: {
      201: json(AdminUser, "The user"),
      ...ERRORS,
      ...FORBIDDEN,
      409: json(ErrorSchema, "The email is taken"),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    let user;
    try {
      user = await createUser(c.get("deps").db, {
        email: body.email,
        password: body.password,
        role: body.role,
        actor: auditActor(c),
      });
    } catch (error) {
      if (error instanceof DuplicateEmailError) throw new ApiError("CONFLICT", error.message);
      if (error instanceof InvalidEmailError || error instanceof PasswordPolicyError) {
        throw new ApiError("VALIDATION_ERROR", error.message, {
          details: [{
            field: error instanceof InvalidEmailError ? "email" : "password",
            message: error.message,
          }],
        });
      }
      throw error;
    }
    return c.json({
      id: user.id,
      email: user.email,
      role: user.role,
      created_at: user.createdAt.toISOString(),
      last_login_at: null,
      active_sessions: 0,
    }, 201);
  },
);

admin.openapi(
  createRoute({
    method: "patch",
    path: "/api/v1/admin/users/{id}",
    tags: ["admin"],
    summary: "Change a user's role (takes effect on their next request)",
    ...ADMIN,
    request: {
      params: IdParam,
      ...jsonBody(RoleBody),
    },
    responses: {
      200: json(z.object({ id: z.string(), email: z.string(), role: Role }), "The user"),
      ...ERRORS,
      ...FORBIDDEN,
      ...NOT_FOUND,
      409: json(ErrorSchema, "It would leave no admin"),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { role } = c.req.valid("json");
    let user;
    try {
      user = await setUserRole(c.get("deps").db, { id, role, actor: auditActor(c) });
    } catch (error) {
      if (error instanceof LastAdminError) throw new ApiError("CONFLICT", error.message);
      throw error;
    }
    if (!user) throw new ApiError("NOT_FOUND", `Cannot find user "${id}"`);
    return c.json({ id: user.id, email: user.email, role: user.role }, 200);
  },
);

admin.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/admin/audit",
    tags: ["admin"],
    summary: "The audit log, newest first",
    ...ADMIN,
    request: { query: AuditQuery },
    responses: {
      200: json(
        z.object({ data: z.array(AuditEntry), next_cursor: z.string().nullable() })
          .openapi("AuditPage"),
        "A page of audit entries",
      ),
      ...ERRORS,
      ...FORBIDDEN,
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const page = await listAudit(c.get("deps").db, {
      actorId: q.actor_id,
      action: q.action,
      outcome: q.outcome,
      beforeId: q.cursor === undefined ? undefined : Number(q.cursor),
      limit: q.limit === undefined ? 50 : Number(q.limit),
    });
    return c.json({
      data: page.rows.map((r) => ({
        id: r.id,
        at: r.at.toISOString(),
        actor_id: r.actorId,
        actor: r.actor,
        action: r.action,
        outcome: r.outcome,
        target_type: r.targetType,
        target_id: r.targetId,
        ip: r.ip,
        user_agent: r.userAgent,
        request_id: r.requestId,
        data: r.data,
      })),
      next_cursor: page.nextBeforeId === null ? null : String(page.nextBeforeId),
    }, 200);
  },
);
