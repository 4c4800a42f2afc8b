/**
 * Broker credentials at rest: AES-256-GCM under ENCRYPTION_KEY (WebCrypto). A ciphertext is
 * `version (1 byte) ‖ iv (12 bytes) ‖ ciphertext+tag`, so a key rotation can tell which key
 * sealed a value. Values are decrypted only at the moment of use.
 *
 * A {@linkcode Keyring} holds the current key and, during a rotation, the previous one: it seals
 * with the current key and opens whatever version a ciphertext names.
 */

/** The version byte of ciphertexts sealed with the current key. */
export const KEY_VERSION = 1;

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Seals and opens values with one key. */
export interface Cipher {
  encrypt(plaintext: string): Promise<Uint8Array>;
  decrypt(sealed: Uint8Array): Promise<string>;
}

/** A 32-byte key and the version byte it seals with (1-255). */
export interface VersionedKey {
  key: Uint8Array;
  version: number;
}

/** Options of {@linkcode createKeyring}. */
export interface KeyringOptions {
  /** Seals every new value. */
  current: VersionedKey;
  /** Still opens values sealed before a rotation; never seals. */
  previous?: VersionedKey;
}

/** The current key and the older ones still readable. */
export interface Keyring extends Cipher {
  /** The version new values are sealed with. */
  readonly version: number;
  /** Every version the keyring can open, current first. */
  readonly versions: readonly number[];
  /** The version byte a ciphertext names. Throws when the value is too short to be one. */
  versionOf(sealed: Uint8Array): number;
}

/** A value is sealed with a key version the keyring does not hold. */
export class UnknownKeyVersionError extends Error {
  override name = "UnknownKeyVersionError";
  /** The version the value names. */
  readonly version: number;

  constructor(version: number, known: readonly number[]) {
    super(
      `Cannot decrypt: the value is sealed with key version ${version}, and no key of that ` +
        `version is configured (known: ${known.join(", ")}); set the key that sealed it as ` +
        `ENCRYPTION_KEY_PREVIOUS`,
    );
    this.version = version;
  }
}

/** Builds a cipher over a 32-byte key. */
export async function createCipher(rawKey: Uint8Array, version = KEY_VERSION): Promise<Cipher> {
  if (rawKey.length !== 32) throw new TypeError("Cannot create cipher: the key must be 32 bytes");
  checkVersion(version);
  const key = await crypto.subtle.importKey("raw", rawKey as BufferSource, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return {
    async encrypt(plaintext) {
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
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
      out.set(sealed, 1 + IV_BYTES);
      return out;
    },
    async decrypt(sealed) {
      checkLength(sealed);
      if (sealed[0] !== version) {
        throw new Error(
          `Cannot decrypt: sealed with key version ${sealed[0]}, this key is version ${version}`,
        );
      }
      try {
        // The version byte is authenticated too: changing it fails here, not silently.
        const plain = await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: sealed.slice(1, 1 + IV_BYTES),
            additionalData: new Uint8Array([version]),
          },
          key,
          sealed.slice(1 + IV_BYTES),
        );
        return new TextDecoder().decode(plain);
      } catch {
        throw new Error("Cannot decrypt: wrong key or tampered value");
      }
    },
  };
}

/**
 * Builds a keyring: seals with `current`, opens values of `current` or `previous`. Keys and
 * versions are checked at once; the keys are imported into WebCrypto on first use.
 *
 * @example
 * const keyring = createKeyring({
 *   current: { key: newKey, version: 2 },
 *   previous: { key: oldKey, version: 1 },
 * });
 * const plain = await keyring.decrypt(sealedUnderV1);
 * const resealed = await keyring.encrypt(plain); // version 2
 */
export function createKeyring(options: KeyringOptions): Keyring {
  const { current, previous } = options;
  for (const [which, k] of [["current", current], ["previous", previous]] as const) {
    if (!k) continue;
    checkVersion(k.version);
    if (k.key.length !== 32) {
      throw new TypeError(`Cannot create keyring: the ${which} key must be 32 bytes`);
    }
  }
  if (previous && previous.version === current.version) {
    throw new RangeError(
      `Cannot create keyring: the previous key has the current key's version ${current.version}`,
    );
  }
  const ciphers = new Map<number, Cipher>();
  ciphers.set(current.version, lazyCipher(current));
  if (previous) ciphers.set(previous.version, lazyCipher(previous));
  const sealer = ciphers.get(current.version)!;
  const versions = [...ciphers.keys()];
  return {
    version: current.version,
    versions,
    versionOf(sealed) {
      checkLength(sealed);
      return sealed[0]!;
    },
    encrypt: (plaintext) => sealer.encrypt(plaintext),
    async decrypt(sealed) {
      checkLength(sealed);
      const cipher = ciphers.get(sealed[0]!);
      if (!cipher) throw new UnknownKeyVersionError(sealed[0]!, versions);
      return await cipher.decrypt(sealed);
    },
  };
}

/**
 * The keyring the configuration names: ENCRYPTION_KEY at ENCRYPTION_KEY_VERSION and, during a
 * rotation, ENCRYPTION_KEY_PREVIOUS at the version before it.
 */
export function configuredKeyring(config: {
  encryptionKey: Uint8Array;
  encryptionKeyVersion: number;
  encryptionKeyPrevious?: Uint8Array;
}): Keyring {
  return createKeyring({
    current: { key: config.encryptionKey, version: config.encryptionKeyVersion },
    previous: config.encryptionKeyPrevious
      ? { key: config.encryptionKeyPrevious, version: config.encryptionKeyVersion - 1 }
      : undefined,
  });
}

/** A cipher whose key is imported on first use (importing is asynchronous in WebCrypto). */
function lazyCipher({ key, version }: VersionedKey): Cipher {
  let ready: Promise<Cipher> | undefined;
  const cipher = () => ready ??= createCipher(key, version);
  return {
    encrypt: async (plaintext) => await (await cipher()).encrypt(plaintext),
    decrypt: async (sealed) => await (await cipher()).decrypt(sealed),
  };
}

function checkVersion(version: number): void {
  if (!Number.isInteger(version) || version < 1 || version > 255) {
    throw new RangeError(`Cannot use key version "${version}": it must be a whole number 1-255`);
  }
}

function checkLength(sealed: Uint8Array): void {
  if (sealed.length < 1 + IV_BYTES + TAG_BYTES) {
    throw new Error("Cannot decrypt: the value is too short");
  }
}
