/**
 * Webhook keys: `whk_` + 32 random bytes (base64url). Only the SHA-256 hash is stored; the first
 * characters are kept as a visible prefix so a trader can tell keys apart.
 */
import { generateToken, sha256 } from "./tokens.ts";

const PREFIX_LENGTH = 12; // "whk_" + 8 characters

/** A new key in clear text (shown once), with what is stored of it. */
export interface NewWebhookKey {
  key: string;
  prefix: string;
  hash: Uint8Array;
}

/** Generates a new webhook key. */
export async function generateWebhookKey(): Promise<NewWebhookKey> {
  const { token, hash } = await generateToken("whk_");
  return { key: token, prefix: token.slice(0, PREFIX_LENGTH), hash };
}

/** The SHA-256 of a key, as stored and looked up. */
export function hashWebhookKey(key: string): Promise<Uint8Array> {
  return sha256(key);
}

/** True when `value` has the shape of a webhook key (cheap check before hashing). */
export function looksLikeWebhookKey(value: unknown): value is string {
  return typeof value === "string" && /^whk_[A-Za-z0-9_-]{43}$/.test(value);
}

/** A key is `expiring` this long before it expires, and its owner is warned once. */
export const EXPIRY_WARNING_MS = 7 * 86_400_000;

/** Where a key stands: usable (`active`, `expiring` within a week) or not (`expired`, `revoked`). */
export type WebhookKeyStatus = "active" | "expiring" | "expired" | "revoked";

/** The status of a key at `now` (epoch ms); a key is expired from its `expiresAt` on. */
export function webhookKeyStatus(
  key: { revokedAt: Date | null; expiresAt: Date | null },
  now: number,
): WebhookKeyStatus {
  if (key.revokedAt !== null) return "revoked";
  if (key.expiresAt === null) return "active";
  const left = key.expiresAt.getTime() - now;
  if (left <= 0) return "expired";
  return left <= EXPIRY_WARNING_MS ? "expiring" : "active";
}
