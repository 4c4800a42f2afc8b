/**
 * Opaque random tokens (webhook keys, refresh tokens): a readable prefix and 32 random bytes in
 * base64url. Only their SHA-256 is ever stored.
 */
import { createHash } from "node:crypto";

/** A new token in clear text (shown once) with the hash that is stored. */
export interface NewToken {
  token: string;
  hash: Uint8Array;
}

/** Generates `prefix` + 32 random bytes (base64url, 43 characters) and its SHA-256. */
export async function generateToken(prefix: string): Promise<NewToken> {
  const token = prefix + base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { token, hash: await sha256(token) };
}

/**
 * The SHA-256 of a string. Synchronous `node:crypto` under the hood: WebCrypto's `digest` hops
 * to a worker thread and back, ~20–80 µs per call idle and several times that on a busy
 * 2-core machine, against ~2 µs here; every webhook request hashes its key.
 */
export function sha256(value: string): Promise<Uint8Array> {
  return Promise.resolve(sha256Sync(value));
}

/** The SHA-256 of a string, synchronously. */
export function sha256Sync(value: string): Uint8Array {
  // A plain Uint8Array of its own (not a Buffer, nor a view into one), as WebCrypto gives.
  return new Uint8Array(createHash("sha256").update(value, "utf8").digest());
}

/** The HMAC-SHA256 of `message` under `secret`, base64url. */
export async function hmacSha256(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message));
  return base64url(new Uint8Array(mac));
}

/** Bytes as unpadded base64url. */
export function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}
