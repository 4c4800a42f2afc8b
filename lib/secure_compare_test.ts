import assert from "node:assert/strict";
import { timingSafeEqual } from "./secure_compare.ts";

Deno.test("timingSafeEqual is true only for equal strings or bytes", () => {
  assert.equal(timingSafeEqual("operator-key", "operator-key"), true);
  assert.equal(timingSafeEqual("operator-key", "operator-kez"), false);
  assert.equal(timingSafeEqual("operator-key", "operator-key-longer"), false);
  assert.equal(timingSafeEqual("", ""), true);
  assert.equal(timingSafeEqual("a", ""), false);
  assert.equal(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  assert.equal(timingSafeEqual("\u0000", ""), false, "a NUL byte is not the same as nothing");
});
