/** Builds the audit actor of a request: the caller, their address, agent and request id. */
import type { Context } from "hono";
import type { AuditActor } from "../db/audit.ts";
import type { AppEnv } from "./_env.ts";
import { clientIp } from "./_middleware.ts";

/** The actor of an audited change made by this request (the authenticated user, if any). */
export function auditActor(
  c: Context<AppEnv>,
  fallback?: { actorId: string | null; actor: string },
): AuditActor {
  const userId = c.get("userId");
  const email = c.get("email");
  return {
    actorId: userId ?? fallback?.actorId ?? null,
    actor: email ?? fallback?.actor ?? "anonymous",
    ip: clientIp(c),
    userAgent: c.req.header("user-agent") ?? null,
    requestId: c.get("requestId"),
  };
}
