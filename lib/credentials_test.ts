import assert from "node:assert/strict";
import { createKeyring } from "./crypto.ts";
import { openCredentials, sealCredentials } from "./credentials.ts";

Deno.test("credentials seal to a ciphertext without the keys and open to the same pair", async () => {
  const keyring = createKeyring({
    current: { key: crypto.getRandomValues(new Uint8Array(32)), version: 3 },
  });
  const pair = { keyId: "PKTESTKEYID0001", secretKey: "s3cr3t-alpaca-secret" };
  const sealed = await sealCredentials(keyring, pair);
  assert.equal(sealed[0], 3);
  const text = new TextDecoder("latin1").decode(sealed);
  assert.ok(!text.includes(pair.keyId) && !text.includes(pair.secretKey));
  assert.deepEqual(await openCredentials(keyring, sealed), pair);
});

Deno.test("opening a sealed value that is not a key pair fails without quoting it", async () => {
  const keyring = createKeyring({
    current: { key: crypto.getRandomValues(new Uint8Array(32)), version: 1 },
  });
  await assert.rejects(
    openCredentials(keyring, await keyring.encrypt("not json: hunter2")),
    (e: unknown) => e instanceof Error && /not JSON/.test(e.message) && !/hunter2/.test(e.message),
  );
  await assert.rejects(
    openCredentials(keyring, await keyring.encrypt('{"keyId":"hunter2"}')),
    (e: unknown) =>
      e instanceof Error && /must be strings/.test(e.message) && !/hunter2/.test(e.message),
  );
});
