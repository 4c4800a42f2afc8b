import assert from "node:assert/strict";
import {
  configuredKeyring,
  createCipher,
  createKeyring,
  UnknownKeyVersionError,
} from "./crypto.ts";

Deno.test("cipher round-trips, uses a fresh IV each time, and refuses tampering or another key", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const cipher = await createCipher(key);
  const a = await cipher.encrypt('{"keyId":"PK1","secretKey":"s3cr3t"}');
  const b = await cipher.encrypt('{"keyId":"PK1","secretKey":"s3cr3t"}');
  assert.notDeepEqual(a, b);
  assert.ok(!new TextDecoder().decode(a).includes("s3cr3t"));
  assert.equal(await cipher.decrypt(a), '{"keyId":"PK1","secretKey":"s3cr3t"}');
  const tampered = a.slice();
  tampered[20]! ^= 1;
  await assert.rejects(cipher.decrypt(tampered), /wrong key or tampered/);
  const other = await createCipher(crypto.getRandomValues(new Uint8Array(32)));
  await assert.rejects(other.decrypt(a), /wrong key or tampered/);
  const v2 = await createCipher(key, 2);
  await assert.rejects(v2.decrypt(a), /key version 1/);
  await assert.rejects(createCipher(new Uint8Array(16)), /32 bytes/);
});

Deno.test("keyring seals with the current key and opens values of the previous one after a rotation", async () => {
  const oldKey = crypto.getRandomValues(new Uint8Array(32));
  const newKey = crypto.getRandomValues(new Uint8Array(32));
  const before = createKeyring({ current: { key: oldKey, version: 1 } });
  const sealedV1 = await before.encrypt("secret-v1");
  assert.equal(before.versionOf(sealedV1), 1);
  assert.deepEqual(before.versions, [1]);

  const during = createKeyring({
    current: { key: newKey, version: 2 },
    previous: { key: oldKey, version: 1 },
  });
  assert.equal(during.version, 2);
  assert.deepEqual(during.versions, [2, 1]);
  assert.equal(await during.decrypt(sealedV1), "secret-v1");
  const sealedV2 = await during.encrypt(await during.decrypt(sealedV1));
  assert.equal(during.versionOf(sealedV2), 2);
  assert.equal(await during.decrypt(sealedV2), "secret-v1");

  // Once the previous key is dropped, v1 values no longer open, with a message naming v1.
  const after = createKeyring({ current: { key: newKey, version: 2 } });
  assert.equal(await after.decrypt(sealedV2), "secret-v1");
  await assert.rejects(
    after.decrypt(sealedV1),
    (error: unknown) =>
      error instanceof UnknownKeyVersionError && error.version === 1 &&
      /sealed with key version 1, and no key of that version is configured \(known: 2\)/.test(
        error.message,
      ),
  );
  // The old keyring cannot read what the new one sealed.
  await assert.rejects(before.decrypt(sealedV2), /key version 2/);
});

Deno.test("keyring refuses tampered values, a swapped version byte, short values and bad versions", async () => {
  const k1 = crypto.getRandomValues(new Uint8Array(32));
  const k2 = crypto.getRandomValues(new Uint8Array(32));
  const keyring = createKeyring({
    current: { key: k2, version: 2 },
    previous: { key: k1, version: 1 },
  });
  const sealed = await keyring.encrypt('{"keyId":"PK1","secretKey":"s3cr3t"}');
  for (const index of [5, 20, sealed.length - 1]) {
    const tampered = sealed.slice();
    tampered[index]! ^= 1;
    await assert.rejects(keyring.decrypt(tampered), /wrong key or tampered/, `byte ${index}`);
  }
  // Relabelling a v2 value as v1 picks the other key, and the version is authenticated anyway.
  const relabelled = sealed.slice();
  relabelled[0] = 1;
  await assert.rejects(keyring.decrypt(relabelled), /wrong key or tampered/);
  await assert.rejects(keyring.decrypt(sealed.slice(0, 20)), /too short/);
  assert.throws(() => keyring.versionOf(new Uint8Array(3)), /too short/);
  assert.throws(
    () => createKeyring({ current: { key: k2, version: 1 }, previous: { key: k1, version: 1 } }),
    /previous key has the current key's version 1/,
  );
  assert.throws(() => createKeyring({ current: { key: k1, version: 0 } }), /1-255/);
  assert.throws(() => createKeyring({ current: { key: k1, version: 256 } }), /1-255/);
  assert.throws(
    () =>
      createKeyring({
        current: { key: k1, version: 2 },
        previous: { key: k1.slice(1), version: 1 },
      }),
    /previous key must be 32 bytes/,
  );
});

Deno.test("configuredKeyring reads the previous key as the version before the current one", async () => {
  const k1 = crypto.getRandomValues(new Uint8Array(32));
  const k2 = crypto.getRandomValues(new Uint8Array(32));
  const old = configuredKeyring({ encryptionKey: k1, encryptionKeyVersion: 4 });
  const sealed = await old.encrypt("x");
  assert.equal(old.versionOf(sealed), 4);
  const rotated = configuredKeyring({
    encryptionKey: k2,
    encryptionKeyVersion: 5,
    encryptionKeyPrevious: k1,
  });
  assert.deepEqual(rotated.versions, [5, 4]);
  assert.equal(await rotated.decrypt(sealed), "x");
});
