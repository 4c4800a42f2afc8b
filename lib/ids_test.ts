import assert from "node:assert/strict";
import { uuidv7, uuidv7Time } from "./ids.ts";

Deno.test("uuidv7 is a valid version-7 UUID that encodes its time and sorts by it", () => {
  const a = uuidv7(Date.UTC(2026, 0, 1));
  const b = uuidv7(Date.UTC(2026, 0, 1, 0, 0, 1));
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(uuidv7Time(a), Date.UTC(2026, 0, 1));
  assert.ok(a < b);
  assert.notEqual(uuidv7(0), uuidv7(0));
});

Deno.test("uuidv7 ids drawn in a burst are all distinct and well-formed, across its random pool's refills", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2_000; i++) {
    const id = uuidv7(Date.UTC(2026, 0, 1));
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(uuidv7Time(id), Date.UTC(2026, 0, 1));
    seen.add(id);
  }
  assert.equal(seen.size, 2_000);
  assert.equal(uuidv7Time(uuidv7(2 ** 48 - 1)), 2 ** 48 - 1);
});
