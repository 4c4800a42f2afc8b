/**
 * Users of an external identity provider: a token's (issuer, subject) maps to a local user.
 * An unmapped subject is linked to the local user with the same email when the provider says
 * the email is verified, or, with auto-provisioning on, becomes a new trader; otherwise it has
 * no access.
 */
import type { ExternalIdentity } from "../lib/oidc.ts";
import { audit, type AuditActor } from "./audit.ts";
import type { Db } from "./client.ts";
import type { SessionUser } from "./sessions.ts";
import { createUser, DuplicateEmailError, findUserByEmail } from "./users.ts";

/** Options of {@linkcode userForExternalIdentity}. */
export interface ExternalUserOptions {
  autoProvision: boolean;
  /** Epoch ms. */
  now: number;
  /** Where the request came from, for the audit log. */
  origin?: Omit<AuditActor, "actorId" | "actor">;
}

/** The local user of an external identity, linking or creating it as allowed; null: none. */
export async function userForExternalIdentity(
  db: Db,
  identity: ExternalIdentity,
  options: ExternalUserOptions,
): Promise<SessionUser | null> {
  const mapped = await mappedUser(db, identity, options.now);
  if (mapped) return mapped;
  if (!identity.email || !identity.emailVerified) return null;
  const local = await findUserByEmail(db, identity.email);
  let userId: string;
  if (local) {
    userId = local.id;
  } else if (options.autoProvision) {
    try {
      userId = (await createUser(db, {
        email: identity.email,
        password: null,
        actor: {
          ...options.origin,
          actorId: null,
          actor: `${identity.issuer}#${identity.subject}`,
        },
      })).id;
    } catch (error) {
      // Another request provisioned the same user first.
      if (!(error instanceof DuplicateEmailError)) throw error;
      userId = (await findUserByEmail(db, identity.email))!.id;
    }
  } else {
    return null;
  }
  await db.transaction(async (tx) => {
    const inserted = await tx.query(
      `INSERT INTO external_identities (issuer, subject, user_id, email, created_at, last_seen_at)
       VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (issuer, subject) DO NOTHING RETURNING user_id`,
      [identity.issuer, identity.subject, userId, identity.email, new Date(options.now)],
    );
    if (inserted.length === 0) return;
    await audit(tx, {
      ...options.origin,
      actorId: userId,
      actor: identity.email!,
      action: "identity.linked",
      targetType: "user",
      targetId: userId,
      data: { issuer: identity.issuer, subject: identity.subject },
    });
  });
  return await mappedUser(db, identity, options.now);
}

async function mappedUser(
  db: Db,
  identity: ExternalIdentity,
  now: number,
): Promise<SessionUser | null> {
  const [row] = await db.query<SessionUser & { lastSeenAt: Date } & Record<string, unknown>>(
    `SELECT u.id, u.email, u.role, i.last_seen_at AS "lastSeenAt"
     FROM external_identities i JOIN users u ON u.id = i.user_id
     WHERE i.issuer = $1 AND i.subject = $2`,
    [identity.issuer, identity.subject],
  );
  if (!row) return null;
  // Recorded at most once a minute, to keep requests read-only.
  if (now - row.lastSeenAt.getTime() > 60_000) {
    await db.query(
      `UPDATE external_identities SET last_seen_at = $3 WHERE issuer = $1 AND subject = $2`,
      [identity.issuer, identity.subject, new Date(now)],
    );
  }
  return { id: row.id, email: row.email, role: row.role };
}
