import assert from "node:assert/strict";
import { serializeProps } from "./Island.tsx";

Deno.test("serializeProps cannot end the <script> it is in, and keeps the values", () => {
  const props = {
    name: "</script><script>alert(1)</script>",
    comment: "<!-- <script>",
    amp: "a & b",
    lines: "one\u2028two\u2029three",
  };
  const json = serializeProps(props);
  assert.ok(!json.includes("<"), json);
  assert.ok(!json.includes(">"), json);
  assert.ok(!json.includes("&"), json);
  assert.ok(!json.includes("\u2028") && !json.includes("\u2029"), "no raw line separators");
  assert.ok(json.includes("\\u003c/script\\u003e"), json);
  assert.ok(json.includes("\\u2028"), json);
  assert.deepEqual(JSON.parse(json), props, "the browser reads back the same props");
});
