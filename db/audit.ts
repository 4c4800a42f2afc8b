/**
 * The audit log: who did what, when, from where. Append-only (a trigger refuses UPDATE and
 * DELETE); rows outlive the users they name. Readable by admins through `/api/v1/admin/audit`.
 */
import type { Queryable } from "./client.ts";

/** Every action the audit log records. */
export const AUDIT_ACTIONS = [
  "auth.setup",
  "auth.login",
  "auth.logout",
  "auth.refresh_reuse",
  "auth.password_changed",
  "session.revoked",
  "identity.linked",
  "user.created",
  "user.role_changed",
  "webhook_key.created",
  "webhook_key.rotated",
  "webhook_key.revoked",
  "broker_account.created",
  "broker_account.updated",
  "broker_account.deleted",
  "kill_switch.changed",
  "secrets.rotated",
  "notification_channel.created",
  "notification_channel.updated",
  "notification_channel.deleted",
  "demo.seeded",
  "demo.reset",
] as const;

/** An audited action. */
export type AuditAction = typeof AUDIT_ACTIONS[number];

/** Who acted and from where; routes build it from the request (routes/_audit.ts). */
export interface AuditActor {
  /** The acting user; null for operator tasks, the system or an unknown login email. */
  actorId: string | null;
  /** The acting user's email, `operator` or `system`. */
  actor: string;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
}

/** One audit entry. */
export interface AuditEntry extends AuditActor {
  action: AuditAction;
  outcome?: "success" | "failure";
  targetType?: string;
  targetId?: string;
  /** Facts about the change. Never secrets: the API and the log show them. */
  data?: Record<string, unknown>;
}

/** An audit row as read back. */
export interface AuditRow {
  id: number;
  at: Date;
  actorId: string | null;
  actor: string;
  action: AuditAction;
  outcome: "success" | "failure";
  targetType: string | null;
  targetId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  data: Record<string, unknown>;
}

/** The actor of operator tasks (`deno task …`). */
export const OPERATOR: AuditActor = { actorId: null, actor: "operator" };

/** Appends one entry; call it inside the transaction of the change it records. */
export async function audit(db: Queryable, entry: AuditEntry): Promise<void> {
  await db.query(
    `INSERT INTO audit_log
       (actor_id, actor, action, outcome, target_type, target_id, ip, user_agent, request_id, data)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb)`,
    [
      entry.actorId,
      entry.actor.slice(0, 254),
      entry.action,
      entry.outcome ?? "success",
      entry.targetType ?? null,
      entry.targetId ?? null,
      entry.ip?.slice(0, 64) ?? null,
      entry.userAgent?.slice(0, 512) ?? null,
      entry.requestId ?? null,
      JSON.stringify(entry.data ?? {}),
    ],
  );
}

/** Filters of {@linkcode listAudit}. */
export interface AuditQuery {
  actorId?: string;
  action?: AuditAction;
  outcome?: "success" | "failure";
  /** Only entries with a smaller id (the `next_cursor` of the previous page). */
  beforeId?: number;
  limit: number;
}

/** Audit entries, newest first, and the cursor of the next page (null on the last one). */
export async function listAudit(
  db: Queryable,
  query: AuditQuery,
): Promise<{ rows: AuditRow[]; nextBeforeId: number | null }> {
  const rows = await db.query<AuditRow & Record<string, unknown>>(
    `SELECT id, at, actor_id AS "actorId", actor, action, outcome, target_type AS "targetType",
            target_id AS "targetId", ip, user_agent AS "userAgent", request_id AS "requestId", data
     FROM audit_log
     WHERE ($1::uuid IS NULL OR actor_id = $1) AND ($2::text IS NULL OR action = $2)
       AND ($3::text IS NULL OR outcome = $3) AND ($4::bigint IS NULL OR id < $4)
     ORDER BY id DESC LIMIT $5`,
    [
      query.actorId ?? null,
      query.action ?? null,
      query.outcome ?? null,
      query.beforeId ?? null,
      query.limit + 1,
    ],
  );
  const more = rows.length > query.limit;
  const page = more ? rows.slice(0, query.limit) : rows;
  return { rows: page, nextBeforeId: more ? page[page.length - 1]!.id : null };
}
