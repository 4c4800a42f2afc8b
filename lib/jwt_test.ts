import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { InvalidTokenError, signAccessToken, verifyAccessToken } from "./jwt.ts";

const SECRET = "test-secret-0123456789-0123456789-abcdef";
const NOW = Date.UTC(2026, 0, 5, 14, 30);
const USER = "0190a5e2-7c1d-7000-8000-000000000001";
const SESSION = "0190a5e2-7c1d-7000-8000-0000000000aa";

function b64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodePart(token: string, index: number): Record<string, unknown> {
  const part = token.split(".")[index]!.replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(part));
}

Deno.test("signAccessToken issues an HS256 token that verifyAccessToken accepts", async () => {
  const token = await signAccessToken({ userId: USER, role: "admin", sessionId: SESSION }, {
    secret: SECRET,
    now: NOW,
  });
  assert.deepEqual(decodePart(token, 0), { alg: "HS256", typ: "JWT" });
  const payload = decodePart(token, 1);
  assert.equal(payload.iss, "trendedge");
  assert.equal(payload.aud, "trendedge");
  assert.equal(payload.sub, USER);
  assert.equal(payload.role, "admin");
  assert.equal(payload.iat, NOW / 1000);
  assert.equal(payload.exp, NOW / 1000 + 3600);
  assert.equal(typeof payload.jti, "string");
  assert.deepEqual(await verifyAccessToken(token, { secret: SECRET, now: NOW + 1000 }), {
    userId: USER,
    role: "admin",
    sessionId: SESSION,
  });
});

Deno.test("verifyAccessToken rejects an expired token, allowing 30 s of clock skew", async () => {
  const token = await signAccessToken({ userId: USER, role: "trader", sessionId: SESSION }, {
    secret: SECRET,
    now: NOW,
    ttlS: 60,
  });
  await verifyAccessToken(token, { secret: SECRET, now: NOW + 85_000 });
  await assert.rejects(
    verifyAccessToken(token, { secret: SECRET, now: NOW + 95_000 }),
    InvalidTokenError,
  );
});

Deno.test("verifyAccessToken rejects a token that is not valid yet", async () => {
  const token = await signAccessToken({ userId: USER, role: "trader", sessionId: SESSION }, {
    secret: SECRET,
    now: NOW + 120_000,
  });
  await assert.rejects(verifyAccessToken(token, { secret: SECRET, now: NOW }), InvalidTokenError);
});

Deno.test("verifyAccessToken rejects a token signed with another secret", async () => {
  const token = await signAccessToken({ userId: USER, role: "trader", sessionId: SESSION }, {
    secret: "another-secret-0123456789-0123456789-xyz",
    now: NOW,
  });
  await assert.rejects(verifyAccessToken(token, { secret: SECRET, now: NOW }), InvalidTokenError);
});

Deno.test("verifyAccessToken rejects alg none and any algorithm other than HS256", async () => {
  const claims = {
    iss: "trendedge",
    aud: "trendedge",
    sub: USER,
    role: "admin",
    iat: NOW / 1000,
    exp: NOW / 1000 + 3600,
    jti: "x",
  };
  const none = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`;
  await assert.rejects(verifyAccessToken(none, { secret: SECRET, now: NOW }), InvalidTokenError);

  const hs512 = await new SignJWT(claims).setProtectedHeader({ alg: "HS512" })
    .sign(new TextEncoder().encode(SECRET));
  await assert.rejects(verifyAccessToken(hs512, { secret: SECRET, now: NOW }), InvalidTokenError);
});

Deno.test("verifyAccessToken rejects a tampered payload", async () => {
  const token = await signAccessToken({ userId: USER, role: "trader", sessionId: SESSION }, {
    secret: SECRET,
    now: NOW,
  });
  const [header, , signature] = token.split(".");
  const payload = { ...decodePart(token, 1), role: "admin" };
  const tampered = `${header}.${b64url(payload)}.${signature}`;
  await assert.rejects(
    verifyAccessToken(tampered, { secret: SECRET, now: NOW }),
    InvalidTokenError,
  );
});

Deno.test("verifyAccessToken rejects a wrong audience or issuer, and garbage", async () => {
  const key = new TextEncoder().encode(SECRET);
  const base = () =>
    new SignJWT({ role: "trader" }).setProtectedHeader({ alg: "HS256" }).setSubject(USER)
      .setIssuedAt(NOW / 1000).setExpirationTime(NOW / 1000 + 3600).setJti("j");
  const wrongAud = await base().setIssuer("trendedge").setAudience("other").sign(key);
  const wrongIss = await base().setIssuer("other").setAudience("trendedge").sign(key);
  for (const token of [wrongAud, wrongIss, "", "a.b.c", "not a token"]) {
    await assert.rejects(verifyAccessToken(token, { secret: SECRET, now: NOW }), InvalidTokenError);
  }
});

Deno.test("verifyAccessToken rejects a token without a valid role", async () => {
  const token = await new SignJWT({ role: "root" }).setProtectedHeader({ alg: "HS256" })
    .setIssuer("trendedge").setAudience("trendedge").setSubject(USER)
    .setIssuedAt(NOW / 1000).setExpirationTime(NOW / 1000 + 3600).setJti("j")
    .sign(new TextEncoder().encode(SECRET));
  await assert.rejects(verifyAccessToken(token, { secret: SECRET, now: NOW }), InvalidTokenError);
});
