/** Users: creation (with their paper account), lookups by id and by email. */
import { uuidv7 } from "../lib/ids.ts";
import type { Role } from "../lib/jwt.ts";
import { hashPassword, type HashPasswordOptions } from "../lib/password.ts";
import { audit, type AuditActor } from "./audit.ts";
import type { Db, Queryable } from "./client.ts";

/** A user, without the password hash. */
export interface UserRow {
  id: string;
  email: string;
  role: Role;
  createdAt: Date;
}

/** A user with the password hash, for login only. */
export interface UserWithPassword extends UserRow {
  /** Null for users of an external identity provider, who cannot log in with a password. */
  passwordHash: string | null;
}

/** A user as created, with the paper account every new user gets. */
export interface CreatedUser extends UserRow {
  paperAccountId: string;
}

/** Another user already has this email (compared case-insensitively). */
export class DuplicateEmailError extends Error {
  override name = "DuplicateEmailError";
  readonly email: string;
  constructor(email: string) {
    super(`Cannot create user "${email}": a user with this email already exists`);
    this.email = email;
  }
}

/** The first-run setup was asked for, but a user exists already. */
export class SetupDoneError extends Error {
  override name = "SetupDoneError";
  constructor() {
    super("Cannot set up: an admin account exists already; log in instead");
  }
}

/** The email is not an address we accept. */
export class InvalidEmailError extends Error {
  override name = "InvalidEmailError";
}

/** Options of {@linkcode createUser}. */
export interface CreateUserOptions extends HashPasswordOptions {
  /** Epoch ms used for the id; defaults to now. */
  now?: number;
}

/** The alias of the paper account every new user gets. */
export const PAPER_ACCOUNT_ALIAS = "paper";

const COLUMNS = `id, email, role, created_at AS "createdAt"`;
const EMAIL = /^[^\s@]+@[^\s@]+$/;

/**
 * Creates a user and their `paper` broker account in one transaction, journaling
 * `user.created`. The first user ever is `admin`, every other one `trader`; the users table is
 * locked for the check, so two concurrent first sign-ups cannot both become admin.
 * Throws {@linkcode DuplicateEmailError}, {@linkcode InvalidEmailError},
 * {@linkcode SetupDoneError} (with `onlyFirst`) or `PasswordPolicyError` (lib/password.ts).
 */
export async function createUser(
  db: Db,
  input: {
    email: string;
    /** Null: no password login (a user of an external identity provider). */
    password: string | null;
    /** Role of any user but the first (default trader). */
    role?: Role;
    /** Refuse unless this is the very first user (the one-time setup). */
    onlyFirst?: boolean;
    /** Who is creating the user, for the audit log (default: the user themselves). */
    actor?: AuditActor;
  },
  options: CreateUserOptions = {},
): Promise<CreatedUser> {
  const email = normalizeEmail(input.email);
  // Hash before the transaction: it takes a few hundred ms and needs no lock.
  const passwordHash = input.password === null ? null : await hashPassword(input.password, options);
  const now = options.now ?? Date.now();
  const userId = uuidv7(now);
  const accountId = uuidv7(now);
  try {
    return await db.transaction(async (tx) => {
      // SHARE ROW EXCLUSIVE conflicts with itself: concurrent creators queue here, and each sees
      // the rows committed before it.
      await tx.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE");
      const [existing] = await tx.query<{ any: boolean; taken: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM users) AS "any",
                EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1)) AS taken`,
        [email],
      );
      if (input.onlyFirst && existing!.any) throw new SetupDoneError();
      if (existing!.taken) throw new DuplicateEmailError(email);
      const role: Role = existing!.any ? input.role ?? "trader" : "admin";
      const [user] = await tx.query<UserRow & Record<string, unknown>>(
        `INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, $4)
         RETURNING ${COLUMNS}`,
        [userId, email, passwordHash, role],
      );
      await tx.query(
        `INSERT INTO broker_accounts (id, user_id, alias, broker) VALUES ($1, $2, $3, 'paper')`,
        [accountId, userId, PAPER_ACCOUNT_ALIAS],
      );
      await tx.query(
        `INSERT INTO journal (user_id, account_id, event, data) VALUES ($1, $2, 'user.created', $3::text::jsonb)`,
        [userId, accountId, JSON.stringify({ role, paper_account: PAPER_ACCOUNT_ALIAS })],
      );
      await audit(tx, {
        ...(input.actor ?? { actorId: userId, actor: email }),
        action: "user.created",
        targetType: "user",
        targetId: userId,
        data: { email, role, password: passwordHash !== null },
      });
      return { ...user!, paperAccountId: accountId };
    });
  } catch (error) {
    // The lock makes this unlikely, but the unique index is the final word.
    if (isUniqueViolation(error, "users_email_key")) throw new DuplicateEmailError(email);
    throw error;
  }
}

/** The user with this email (case-insensitive), with the password hash, or null. */
export async function findUserByEmail(
  db: Queryable,
  email: string,
): Promise<UserWithPassword | null> {
  const [row] = await db.query<UserWithPassword & Record<string, unknown>>(
    `SELECT ${COLUMNS}, password_hash AS "passwordHash" FROM users WHERE lower(email) = lower($1)`,
    [email.trim()],
  );
  return row ?? null;
}

/** The user with this id, or null. */
export async function getUser(db: Queryable, id: string): Promise<UserRow | null> {
  if (!isUuid(id)) return null;
  const [row] = await db.query<UserRow & Record<string, unknown>>(
    `SELECT ${COLUMNS} FROM users WHERE id = $1`,
    [id],
  );
  return row ?? null;
}

/** True when no user exists yet (the dashboard then offers the one-time setup). */
export async function setupRequired(db: Queryable): Promise<boolean> {
  const [row] = await db.query<{ any: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM users) AS "any"`,
  );
  return !row!.any;
}

/** Trims an email and checks its shape; throws {@linkcode InvalidEmailError}. */
export function normalizeEmail(email: string): string {
  const trimmed = email.trim();
  if (trimmed.length < 3 || trimmed.length > 254 || !EMAIL.test(trimmed)) {
    throw new InvalidEmailError(`Cannot use email "${trimmed}": it is not a valid address`);
  }
  return trimmed;
}

/** True when `value` is a UUID (so it can be compared with a uuid column without an error). */
export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  if (typeof error !== "object" || error === null) return false;
  const e = error as { code?: unknown; constraint?: unknown; constraint_name?: unknown };
  if (e.code !== "23505") return false;
  const name = e.constraint ?? e.constraint_name;
  return name === undefined || name === constraint;
}

/** A user as an admin lists them. */
export interface UserListRow extends UserRow {
  lastLoginAt: Date | null;
  activeSessions: number;
}

/** Every user, oldest first, with their last login and live session count. */
export function listUsers(db: Queryable, now: number): Promise<UserListRow[]> {
  return db.query<UserListRow & Record<string, unknown>>(
    `SELECT u.id, u.email, u.role, u.created_at AS "createdAt",
            (SELECT max(created_at) FROM sessions s WHERE s.user_id = u.id) AS "lastLoginAt",
            (SELECT count(*)::int FROM sessions s
             WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > $1) AS "activeSessions"
     FROM users u ORDER BY u.created_at, u.id`,
    [new Date(now)],
  );
}

/** The last admin cannot be demoted: there must always be someone to run the system. */
export class LastAdminError extends Error {
  override name = "LastAdminError";
  constructor() {
    super("Cannot change the role: this is the only admin; make another user admin first");
  }
}

/**
 * Sets the role of user `id`, auditing the change; returns the user, or null when there is no
 * such user. Throws {@linkcode LastAdminError} when it would leave no admin.
 */
export function setUserRole(
  db: Db,
  input: { id: string; role: Role; actor: AuditActor },
): Promise<UserRow | null> {
  if (!isUuid(input.id)) return Promise.resolve(null);
  return db.transaction(async (tx) => {
    // Serializes role changes, so two concurrent demotions cannot remove both last admins.
    await tx.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE");
    const [before] = await tx.query<{ role: Role }>(
      `SELECT role FROM users WHERE id = $1`,
      [input.id],
    );
    if (!before) return null;
    if (before.role === "admin" && input.role !== "admin") {
      const [admins] = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM users WHERE role = 'admin'`,
      );
      if (admins!.n <= 1) throw new LastAdminError();
    }
    const [row] = await tx.query<UserRow & Record<string, unknown>>(
      `UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [input.id, input.role],
    );
    if (before.role !== input.role) {
      await audit(tx, {
        ...input.actor,
        action: "user.role_changed",
        targetType: "user",
        targetId: input.id,
        data: { email: row!.email, from: before.role, to: input.role },
      });
    }
    return row!;
  });
}

/** Stores a new password hash (lib/password.ts) for user `id`. */
export async function setUserPassword(db: Queryable, id: string, passwordHash: string) {
  await db.query(`UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1`, [
    id,
    passwordHash,
  ]);
}
