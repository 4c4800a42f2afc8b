/**
 * A broker account's API credentials at rest: the JSON `{"keyId","secretKey"}` sealed by the
 * keyring (lib/crypto.ts) into `broker_accounts.credentials`. Sealed when an account is created
 * or its keys change; opened only when the executor builds its broker client.
 */
import type { Cipher } from "./crypto.ts";

/** An Alpaca key pair, in clear: never logged, never returned by the API. */
export interface BrokerCredentials {
  keyId: string;
  secretKey: string;
}

/** Seals `credentials` with the keyring's current key. */
export function sealCredentials(
  cipher: Cipher,
  credentials: BrokerCredentials,
): Promise<Uint8Array> {
  return cipher.encrypt(
    JSON.stringify({ keyId: credentials.keyId, secretKey: credentials.secretKey }),
  );
}

/** Opens sealed credentials. The error never quotes the value, only what is wrong with it. */
export async function openCredentials(
  cipher: Cipher,
  sealed: Uint8Array,
): Promise<BrokerCredentials> {
  const plain = await cipher.decrypt(sealed);
  let value: unknown;
  try {
    value = JSON.parse(plain);
  } catch {
    throw new Error("Cannot read broker credentials: the decrypted value is not JSON");
  }
  const { keyId, secretKey } = (value ?? {}) as Record<string, unknown>;
  if (typeof keyId !== "string" || typeof secretKey !== "string") {
    throw new Error("Cannot read broker credentials: keyId and secretKey must be strings");
  }
  return { keyId, secretKey };
}
