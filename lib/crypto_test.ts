import assert from "node:assert/strict";
import { createCipher } from "./crypto.ts";

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
