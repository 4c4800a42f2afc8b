import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// @ts-types="@types/jsonwebtoken"
import jwt from "jsonwebtoken";
import { createSigningKey } from "../tests/fakes/jwks.ts";
import { InvalidTokenError, verifyAccessToken } from "./jwt.ts";

// Attacks on our own access tokens. Forged tokens are minted by jsonwebtoken (not jose, which
// verifies them) and judged only through verifyAccessToken.

const SECRET = "test-secret-0123456789-0123456789-abcdef";
const NOW = Date.UTC(2026, 0, 5, 14, 30);
const NOW_S = NOW / 1000;
const USER = "0190a5e2-7c1d-7000-8000-000000000001";

type Claims = Record<string, unknown>;

/** The claims of a genuine access token (`sid` included for the session-id change). */
function claims(overrides: Claims = {}): Claims {
  const all: Claims = {
    iss: "trendedge",
    aud: "trendedge",
    sub: USER,
    role: "trader",
    sid: "0190a5e2-7c1d-7000-8000-0000000000aa",
    iat: NOW_S,
    nbf: NOW_S,
    exp: NOW_S + 3600,
    jti: "0190a5e2-7c1d-7000-8000-0000000000bb",
    ...overrides,
  };
  return Object.fromEntries(Object.entries(all).filter(([, value]) => value !== undefined));
}

/** HS256 by jsonwebtoken; JSON text in, so it adds no wall-clock iat and checks no claim. */
function mint(payload: Claims = claims(), secret = SECRET, options: jwt.SignOptions = {}): string {
  return jwt.sign(JSON.stringify(payload), secret, { algorithm: "HS256", ...options });
}

function b64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString(
    "base64url",
  );
}

async function assertRefused(token: string, now = NOW): Promise<void> {
  await assert.rejects(verifyAccessToken(token, { secret: SECRET, now }), InvalidTokenError);
}

Deno.test("verifyAccessToken accepts a genuine HS256 token minted by jsonwebtoken (control)", async () => {
  const verified = await verifyAccessToken(mint(), { secret: SECRET, now: NOW });
  assert.equal(verified.userId, USER);
  assert.equal(verified.role, "trader");
});

Deno.test("verifyAccessToken refuses alg none in every spelling, signed or not", async () => {
  const payload = b64url(claims({ role: "admin" }));
  const signature = mint().split(".")[2];
  for (const alg of ["none", "None", "NONE", "nOnE"]) {
    await assertRefused(`${b64url({ alg, typ: "JWT" })}.${payload}.`);
    await assertRefused(`${b64url({ alg, typ: "JWT" })}.${payload}.${signature}`);
  }
  await assertRefused(`${b64url({ typ: "JWT" })}.${payload}.`);
  await assertRefused(jwt.sign(JSON.stringify(claims()), "", { algorithm: "none" }));
});

Deno.test("verifyAccessToken refuses HS256 tokens signed with any other secret", async () => {
  for (
    const secret of [
      "another-secret-0123456789-0123456789-xyz",
      SECRET.slice(0, -1),
      `${SECRET} `,
      SECRET.toUpperCase(),
      "secret",
      "trendedge",
    ]
  ) {
    await assertRefused(mint(claims(), secret));
  }
});

Deno.test("verifyAccessToken refuses RS256, ES256 and other HMAC algorithms", async () => {
  const rsa = createSigningKey("RS256", "rsa-1");
  const ec = createSigningKey("ES256", "ec-1");
  const payload = JSON.stringify(claims());
  await assertRefused(jwt.sign(payload, rsa.privateKey, { algorithm: "RS256", keyid: rsa.kid }));
  await assertRefused(jwt.sign(payload, ec.privateKey, { algorithm: "ES256", keyid: ec.kid }));
  await assertRefused(jwt.sign(payload, SECRET, { algorithm: "HS384" }));
  await assertRefused(jwt.sign(payload, SECRET, { algorithm: "HS512" }));
  // The right HMAC under another name: the header says HS512, the signature is HS256.
  const [, body, signature] = mint().split(".");
  await assertRefused(`${b64url({ alg: "HS512", typ: "JWT" })}.${body}.${signature}`);
  await assertRefused(`${b64url({ alg: "hs256", typ: "JWT" })}.${body}.${signature}`);
});

Deno.test("verifyAccessToken refuses a tampered payload, header or signature", async () => {
  const token = mint();
  const [header, body, signature] = token.split(".") as [string, string, string];
  const admin = b64url(claims({ role: "admin" }));
  const otherUser = b64url(claims({ sub: "0190a5e2-7c1d-7000-8000-000000000002" }));
  const otherSignature = mint(claims({ role: "admin" }), "another-secret-0123456789-0123456789")
    .split(".")[2];
  const flipped = `${signature.slice(0, -2)}${signature.endsWith("AA") ? "AB" : "AA"}`;
  for (
    const candidate of [
      `${header}.${admin}.${signature}`,
      `${header}.${otherUser}.${signature}`,
      `${header}.${admin}.${otherSignature}`,
      `${header}.${body}.`,
      `${header}.${body}.${flipped}`,
      `${b64url({ alg: "HS256", typ: "JWT", kid: "x" })}.${body}.${signature}`,
      `${b64url({ alg: "HS256", crit: ["exp"] })}.${body}.${signature}`,
    ]
  ) {
    await assertRefused(candidate);
  }
  // Correctly signed, yet with headers jose must refuse: an unknown crit, an unencoded payload.
  await assertRefused(mint(claims(), SECRET, { header: { alg: "HS256", crit: ["exp"] } }));
  const unencoded = { alg: "HS256", b64: false, crit: ["b64"] };
  await assertRefused(mint(claims(), SECRET, { header: unencoded as jwt.JwtHeader }));
});

Deno.test("verifyAccessToken refuses a wrong or missing issuer and audience", async () => {
  for (
    const overrides of [
      { iss: "trendedge-evil" },
      { iss: "https://trendedge" },
      { iss: undefined },
      { aud: "other" },
      { aud: ["other", "third"] },
      { aud: undefined },
    ]
  ) {
    await assertRefused(mint(claims(overrides)));
  }
});

Deno.test("verifyAccessToken refuses a token not valid yet, expired, or missing time claims", async () => {
  await assertRefused(mint(claims({ nbf: NOW_S + 600 })));
  await assertRefused(mint(claims({ iat: NOW_S - 7200, nbf: NOW_S - 7200, exp: NOW_S - 3600 })));
  await assertRefused(mint(claims({ exp: undefined })));
  await assertRefused(mint(claims({ exp: "never" })));
  await assertRefused(mint(claims({ iat: undefined })));
  await assertRefused(mint(claims({ jti: undefined })));
  await assertRefused(mint(claims({ sub: undefined })));
  await assertRefused(mint(claims({ sub: "" })));
});

Deno.test("verifyAccessToken refuses oversized forged tokens and garbage", async () => {
  const padding = "x".repeat(100 * 1024);
  await assertRefused(mint(claims({ padding }), "another-secret-0123456789-0123456789-xyz"));
  await assertRefused(`${b64url({ alg: "none" })}.${b64url(claims({ padding }))}.`);
  await assertRefused("a".repeat(100 * 1024));
  await assertRefused(`${"a".repeat(50 * 1024)}.${"b".repeat(50 * 1024)}.c`);
  const token = mint();
  for (
    const candidate of [
      "",
      " ",
      "a.b.c",
      "...",
      `Bearer ${token}`,
      ` ${token}`,
      `${token}.`,
      `${token}.x.y`,
      `${b64url("{")}.${token.split(".")[1]}.${token.split(".")[2]}`,
      "\u0000\u0001.\uffff.\ud800",
    ]
  ) {
    await assertRefused(candidate);
  }
});
