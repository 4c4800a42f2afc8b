/**
 * Opaque random tokens (webhook keys, refresh tokens): a readable prefix and 32 random bytes in
 * base64url. Only their SHA-256 is ever stored.
 */

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

/** The SHA-256 of a string. */
export async function sha256(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value)));
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
