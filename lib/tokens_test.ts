import assert from "node:assert/strict";
import { sha256, sha256Sync } from "./tokens.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("sha256 gives the standard SHA-256 of the UTF-8 text, as WebCrypto does", async () => {
  assert.equal(
    hex(await sha256("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  for (const text of ["", "whk_é€😀", "x".repeat(10_000)]) {
    const web = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
    );
    assert.deepEqual(sha256Sync(text), web);
    assert.equal(sha256Sync(text).byteLength, 32);
  }
});
