import assert from "node:assert/strict";
import {
  hashPassword,
  PasswordPolicyError,
  PBKDF2_ITERATIONS,
  verifyPassword,
} from "./password.ts";

Deno.test("hashPassword stores PBKDF2-SHA256 with 600,000 iterations, a 16-byte salt and 32-byte hash", async () => {
  const stored = await hashPassword("correct horse battery");
  const [scheme, iterations, salt, hash] = stored.split("$");
  assert.equal(scheme, "pbkdf2_sha256");
  assert.equal(Number(iterations), PBKDF2_ITERATIONS);
  assert.equal(PBKDF2_ITERATIONS, 600_000);
  assert.equal(atob(salt!).length, 16);
  assert.equal(atob(hash!).length, 32);
  assert.equal(await verifyPassword("correct horse battery", stored), true);
  assert.equal(await verifyPassword("correct horse batterY", stored), false);
});

Deno.test("hashPassword salts every hash differently", async () => {
  const a = await hashPassword("same password", { iterations: 1000 });
  const b = await hashPassword("same password", { iterations: 1000 });
  assert.notEqual(a, b);
  assert.ok(await verifyPassword("same password", a));
  assert.ok(await verifyPassword("same password", b));
});

Deno.test("verifyPassword honours the iteration count in the stored string", async () => {
  const stored = await hashPassword("low iteration pw", { iterations: 1000 });
  assert.match(stored, /^pbkdf2_sha256\$1000\$/);
  assert.equal(await verifyPassword("low iteration pw", stored), true);
  // The same salt and hash under another count no longer match.
  assert.equal(
    await verifyPassword("low iteration pw", stored.replace("$1000$", "$1001$")),
    false,
  );
});

Deno.test("hashPassword rejects passwords shorter than 10 or longer than 1024 characters", async () => {
  await assert.rejects(hashPassword("short"), PasswordPolicyError);
  await assert.rejects(hashPassword("123456789"), PasswordPolicyError);
  await assert.rejects(hashPassword("x".repeat(1025)), PasswordPolicyError);
  assert.ok(await hashPassword("1234567890", { iterations: 1000 }));
  assert.ok(await hashPassword("x".repeat(1024), { iterations: 1000 }));
});

Deno.test("verifyPassword treats a malformed stored hash as a mismatch", async () => {
  for (
    const stored of [
      "",
      "plain",
      "bcrypt$10$abc$def",
      "pbkdf2_sha256$0$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      "pbkdf2_sha256$99999999$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      "pbkdf2_sha256$1000$!!$AAAA",
      "pbkdf2_sha256$1000$AAAA$",
    ]
  ) {
    assert.equal(await verifyPassword("whatever password", stored), false, stored);
  }
});
