/**
 * Broker credentials at rest: AES-256-GCM under ENCRYPTION_KEY (WebCrypto). A ciphertext is
 * `version (1 byte) ‖ iv (12 bytes) ‖ ciphertext+tag`, so a key rotation can tell which key
 * sealed a value. Values are decrypted only at the moment of use.
 */

/** The version byte of ciphertexts sealed with the current key. */
export const KEY_VERSION = 1;

/** Seals and opens values with one key. */
export interface Cipher {
  encrypt(plaintext: string): Promise<Uint8Array>;
  decrypt(sealed: Uint8Array): Promise<string>;
}

/** Builds a cipher over a 32-byte key. */
export async function createCipher(rawKey: Uint8Array, version = KEY_VERSION): Promise<Cipher> {
  if (rawKey.length !== 32) throw new TypeError("Cannot create cipher: the key must be 32 bytes");
  const key = await crypto.subtle.importKey("raw", rawKey as BufferSource, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return {
    async encrypt(plaintext) {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const sealed = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: new Uint8Array([version]) },
          key,
          new TextEncoder().encode(plaintext),
        ),
      );
      const out = new Uint8Array(1 + iv.length + sealed.length);
      out[0] = version;
      out.set(iv, 1);
      out.set(sealed, 13);
      return out;
    },
    async decrypt(sealed) {
      if (sealed.length < 1 + 12 + 16) throw new Error("Cannot decrypt: the value is too short");
      if (sealed[0] !== version) {
        throw new Error(
          `Cannot decrypt: sealed with key version ${sealed[0]}, this key is version ${version}`,
        );
      }
      try {
        const plain = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: sealed.slice(1, 13), additionalData: new Uint8Array([version]) },
          key,
          sealed.slice(13),
        );
        return new TextDecoder().decode(plain);
      } catch {
        throw new Error("Cannot decrypt: wrong key or tampered value");
      }
    },
  };
}
