/**
 * Re-encrypting the sealed values at rest (`broker_accounts.credentials`,
 * `notification_channels.secret`) under the current
 * ENCRYPTION_KEY, after a rotation. One transaction: every value is re-sealed, or none is.
 */
import { audit, OPERATOR } from "./audit.ts";
import type { Db } from "./client.ts";
import type { Keyring } from "../lib/crypto.ts";

/** How many sealed values each key version holds, by version. */
export type VersionCounts = Record<number, number>;

/** What {@linkcode rotateCredentials} found and did. */
export interface RotationReport {
  /** Values by key version before the rotation. */
  before: VersionCounts;
  /** Values by key version after it (the same as `before` on a dry run). */
  after: VersionCounts;
  /** Values re-sealed under the current version (or that would be, on a dry run). */
  rotated: number;
  /** The version values are sealed with now. */
  version: number;
  dryRun: boolean;
}

/**
 * Re-seals every credential not sealed with the keyring's current version, checking that
 * every value (current ones included) opens and that each re-sealed value opens to the same
 * text. Throws — changing nothing — when a value names a version the keyring has no key for,
 * or does not open. Audits `secrets.rotated` (counts only) unless `dryRun`.
 */
export function rotateCredentials(
  db: Db,
  keyring: Keyring,
  options: { dryRun?: boolean } = {},
): Promise<RotationReport> {
  const dryRun = options.dryRun ?? false;
  return db.transaction(async (tx) => {
    // Locked, so an account changed meanwhile is not overwritten with its old keys.
    const accounts = await tx.query<{ id: string; alias: string; credentials: Uint8Array }>(
      `SELECT id, alias, credentials FROM broker_accounts WHERE credentials IS NOT NULL
       ORDER BY id FOR UPDATE`,
    );
    const channels = await tx.query<{ id: string; name: string; secret: Uint8Array }>(
      "SELECT id, name, secret FROM notification_channels ORDER BY id FOR UPDATE",
    );
    const rows: SealedRow[] = [
      ...accounts.map((r) => ({
        id: r.id,
        sealed: r.credentials,
        what: `the credentials of account "${r.alias}" (${r.id})`,
        update: "UPDATE broker_accounts SET credentials = $2 WHERE id = $1",
      })),
      ...channels.map((r) => ({
        id: r.id,
        sealed: r.secret,
        what: `the secrets of notification channel "${r.name}" (${r.id})`,
        update: "UPDATE notification_channels SET secret = $2 WHERE id = $1",
      })),
    ];
    const before: VersionCounts = {};
    for (const row of rows) {
      let v: number;
      try {
        v = keyring.versionOf(row.sealed);
      } catch {
        throw new Error(`Cannot rotate secrets: ${row.what} are not a sealed value`);
      }
      before[v] = (before[v] ?? 0) + 1;
    }
    const unknown = Object.keys(before).map(Number).filter((v) => !keyring.versions.includes(v));
    if (unknown.length > 0) {
      const list = unknown.map((v) => `${before[v]} value(s) sealed with key version ${v}`)
        .join(" and ");
      throw new Error(
        `Cannot rotate secrets: ${list}, and no key of ${
          unknown.length > 1 ? "those versions" : "that version"
        } is configured (configured: ${keyring.versions.join(", ")}); set the key that sealed ` +
          `them as ENCRYPTION_KEY_PREVIOUS, with ENCRYPTION_KEY_VERSION one above its version`,
      );
    }
    let rotated = 0;
    for (const row of rows) {
      const plain = await openOrExplain(keyring, row.sealed, row);
      if (keyring.versionOf(row.sealed) === keyring.version) continue;
      rotated++;
      if (dryRun) continue;
      const resealed = await keyring.encrypt(plain);
      if ((await openOrExplain(keyring, resealed, row)) !== plain) {
        throw new Error(`Cannot rotate secrets: ${row.what}, re-encrypted, do not read back`);
      }
      await tx.query(row.update, [row.id, resealed]);
    }
    // After a real run every value is sealed with the current version.
    const after: VersionCounts = dryRun
      ? { ...before }
      : rows.length > 0
      ? { [keyring.version]: rows.length }
      : {};
    if (!dryRun) {
      await audit(tx, {
        ...OPERATOR,
        action: "secrets.rotated",
        targetType: "broker_account_credentials",
        data: { key_version: keyring.version, rotated, before, after },
      });
    }
    return { before, after, rotated, version: keyring.version, dryRun };
  });
}

/** A sealed value at rest: where it lives and how errors name it. */
interface SealedRow {
  id: string;
  sealed: Uint8Array;
  what: string;
  update: string;
}

async function openOrExplain(
  keyring: Keyring,
  sealed: Uint8Array,
  row: SealedRow,
): Promise<string> {
  try {
    return await keyring.decrypt(sealed);
  } catch (error) {
    throw new Error(
      `Cannot rotate secrets: ${row.what} do not decrypt: ${
        (error as Error).message.replace(/^Cannot decrypt: /, "")
      }`,
      { cause: error },
    );
  }
}
