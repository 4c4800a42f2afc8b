/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-signature` holds
 * space-separated `v1,<base64 HMAC-SHA256>` entries over `${webhook-id}.${webhook-timestamp}.${body}`.
 * trendedge signs with the webhook key itself (its UTF-8 bytes) as the secret, so nothing beyond
 * the key's hash needs storing; replays are refused by the timestamp tolerance and by dedup on
 * `webhook-id`.
 */
import { timingSafeEqual } from "./secure_compare.ts";

/** How far a signature's timestamp may be from now. */
export const SIGNATURE_TOLERANCE_S = 5 * 60;

/** The three headers of a signed request. */
export interface SignatureHeaders {
  id: string;
  timestamp: string;
  signature: string;
}

/** Computes the `v1,…` signature of a message. */
export async function sign(
  secret: string,
  headers: { id: string; timestamp: string },
  body: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${headers.id}.${headers.timestamp}.${body}`),
  );
  return `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`;
}

/** Checks a signed request; returns null when valid, else why not. */
export async function verify(
  secret: string,
  headers: SignatureHeaders,
  body: string,
  nowMs: number,
): Promise<string | null> {
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(headers.id)) return "webhook-id is malformed";
  if (!/^\d{1,12}$/.test(headers.timestamp)) return "webhook-timestamp must be Unix seconds";
  const skew = Math.abs(nowMs / 1000 - Number(headers.timestamp));
  if (skew > SIGNATURE_TOLERANCE_S) {
    return `webhook-timestamp is ${
      Math.round(skew)
    } s away from now (tolerance ${SIGNATURE_TOLERANCE_S} s)`;
  }
  const expected = await sign(secret, headers, body);
  const given = headers.signature.split(" ").filter((s) => s.startsWith("v1,"));
  if (given.length === 0) return "webhook-signature has no v1 signature";
  return given.some((s) => timingSafeEqual(s, expected))
    ? null
    : "webhook-signature does not match";
}
