/**
 * Password hashing with WebCrypto PBKDF2-SHA256, stored as
 * `pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>`. Verification honours the iteration count
 * in the stored string, so the default can be raised without invalidating old hashes.
 */
import { timingSafeEqual } from "./secure_compare.ts";

/** Iterations for new hashes (OWASP 2023 guidance for PBKDF2-HMAC-SHA256). */
export const PBKDF2_ITERATIONS = 600_000;
/** Shortest password accepted at creation. */
export const MIN_PASSWORD_LENGTH = 10;
/** Longest password accepted at creation (bounds the hashing cost of a request). */
export const MAX_PASSWORD_LENGTH = 1024;

const SCHEME = "pbkdf2_sha256";
const SALT_BYTES = 16;
const HASH_BYTES = 32;
// A stored string claiming more than this is refused rather than burning CPU on it.
const MAX_ITERATIONS = 10_000_000;

/** A password that does not meet the length rules. */
export class PasswordPolicyError extends Error {
  override name = "PasswordPolicyError";
}

/** Options of {@linkcode hashPassword}. */
export interface HashPasswordOptions {
  /** Defaults to {@linkcode PBKDF2_ITERATIONS}; tests may lower it. */
  iterations?: number;
}

/**
 * Hashes a new password. Throws {@linkcode PasswordPolicyError} when it is shorter than
 * {@linkcode MIN_PASSWORD_LENGTH} or longer than {@linkcode MAX_PASSWORD_LENGTH} characters.
 *
 * @example
 * const stored = await hashPassword("correct horse battery");
 * await verifyPassword("correct horse battery", stored); // true
 */
export async function hashPassword(
  password: string,
  options: HashPasswordOptions = {},
): Promise<string> {
  checkPasswordPolicy(password);
  const iterations = options.iterations ?? PBKDF2_ITERATIONS;
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, iterations, HASH_BYTES);
  return `${SCHEME}$${iterations}$${toBase64(salt)}$${toBase64(hash)}`;
}

/** Throws {@linkcode PasswordPolicyError} when `password` breaks the length rules. */
export function checkPasswordPolicy(password: string): void {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) {
    throw new PasswordPolicyError(
      `Cannot use this password: it must be at least ${MIN_PASSWORD_LENGTH} characters`,
    );
  }
  if (length > MAX_PASSWORD_LENGTH) {
    throw new PasswordPolicyError(
      `Cannot use this password: it must be at most ${MAX_PASSWORD_LENGTH} characters`,
    );
  }
}

/**
 * True when `password` matches `stored`. A malformed stored string is a mismatch, never a
 * throw; the comparison takes the same time wherever the hashes first differ.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseStored(stored);
  // Over-long input is refused at creation, so it can never match; skip the work. (A code
  // point is at most two UTF-16 units.)
  if (!parsed || password.length > MAX_PASSWORD_LENGTH * 2) return false;
  const actual = await derive(password, parsed.salt, parsed.iterations, parsed.hash.length);
  return timingSafeEqual(actual, parsed.hash);
}

function parseStored(
  stored: string,
): { iterations: number; salt: Uint8Array; hash: Uint8Array } | undefined {
  const parts = stored.split("$");
  if (parts.length !== 4 || parts[0] !== SCHEME || !/^[1-9]\d{0,7}$/.test(parts[1]!)) {
    return undefined;
  }
  const iterations = Number(parts[1]);
  if (iterations > MAX_ITERATIONS) return undefined;
  const salt = fromBase64(parts[2]!);
  const hash = fromBase64(parts[3]!);
  if (!salt || !hash || salt.length === 0 || hash.length < 16 || hash.length > 64) {
    return undefined;
  }
  return { iterations, salt, hash };
}

async function derive(
  password: string,
  salt: Uint8Array,
  iterations: number,
  bytes: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, iterations },
    key,
    bytes * 8,
  );
  return new Uint8Array(bits);
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}
