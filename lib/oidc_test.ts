import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// @ts-types="@types/jsonwebtoken"
import jwt from "jsonwebtoken";
import { createSigningKey, type SigningKey, startJwksServer } from "../tests/fakes/jwks.ts";
import { InvalidTokenError } from "./jwt.ts";
import {
  createExternalVerifier,
  type ExternalAuthOptions,
  type ExternalVerifier,
  peekIssuer,
} from "./oidc.ts";

// Positive tokens are minted by jsonwebtoken with node:crypto keys, never by jose (our verifier's
// library), so a shared misunderstanding between signer and verifier cannot hide a bug.

const NOW = Date.UTC(2026, 0, 5, 14, 30);
const NOW_S = NOW / 1000;
const ISSUER = "https://idp.example.test/";
const AUDIENCE = "trendedge-api";
const SUBJECT = "user_01HZX8Q4J6";
const SUPABASE_ISSUER = "https://abcdefghijklmnop.supabase.co/auth/v1";
const SUPABASE_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

const RSA_KEY = createSigningKey("RS256", "rsa-2026-01");
const RSA_NEXT_KEY = createSigningKey("RS256", "rsa-2026-02");
const RS512_KEY = createSigningKey("RS512", "rsa512-2026-01");
const EC_KEY = createSigningKey("ES256", "ec-2026-01");
const ATTACKER_KEY = createSigningKey("RS256", "attacker");

type Claims = Record<string, unknown>;

function claims(overrides: Claims = {}): Claims {
  const all: Claims = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: SUBJECT,
    email: "ada@example.test",
    email_verified: true,
    iat: NOW_S,
    exp: NOW_S + 3600,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(all).filter(([, value]) => value !== undefined));
}

/**
 * Signs with jsonwebtoken. The payload goes in as JSON text, so jsonwebtoken neither adds an iat
 * from the wall clock (it would, for a payload without one) nor refuses odd claims we mean to
 * send; `noTimestamp` is no help, as it deletes an iat the payload does have.
 */
function mint(key: SigningKey, payload: Claims = claims(), header: jwt.SignOptions = {}): string {
  return jwt.sign(JSON.stringify(payload), key.privateKey, {
    algorithm: key.alg,
    keyid: key.kid,
    ...header,
  });
}

function mintHs256(secret: string, payload: Claims, header: jwt.SignOptions = {}): string {
  return jwt.sign(JSON.stringify(payload), secret, { algorithm: "HS256", ...header });
}

function b64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString(
    "base64url",
  );
}

function options(overrides: Partial<ExternalAuthOptions> = {}): ExternalAuthOptions {
  return {
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ["RS256", "ES256"],
    clockToleranceS: 30,
    ...overrides,
  };
}

/** Asserts an InvalidTokenError whose message matches `reason` and does not quote the token. */
async function assertRefused(
  verifier: ExternalVerifier,
  token: string,
  reason: RegExp,
  now = NOW,
): Promise<void> {
  await assert.rejects(verifier.verify(token, now), (error: unknown) => {
    assert.ok(error instanceof InvalidTokenError, `expected InvalidTokenError, got ${error}`);
    assert.match(error.message, /^Cannot accept the token: /);
    assert.match(error.message, reason);
    if (typeof token === "string" && token.length >= 16) {
      assert.ok(!error.message.includes(token), "message quotes the token");
    }
    return true;
  });
}

// --- Accepted tokens ------------------------------------------------------------------------

Deno.test("external verifier accepts an RS256 token from the provider's JWKS and caches it", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk, EC_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  assert.equal(verifier.issuer, ISSUER);
  assert.deepEqual(await verifier.verify(mint(RSA_KEY), NOW), {
    issuer: ISSUER,
    subject: SUBJECT,
    email: "ada@example.test",
    emailVerified: true,
  });
  await verifier.verify(mint(RSA_KEY, claims({ sub: "user_2" })), NOW);
  assert.equal(jwks.requests, 1);
});

Deno.test("external verifier accepts an ES256 token from the provider's JWKS", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk, EC_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const identity = await verifier.verify(mint(EC_KEY), NOW);
  assert.equal(identity.subject, SUBJECT);
});

Deno.test("external verifier accepts a Supabase HS256 token signed with the shared secret", async () => {
  const verifier = createExternalVerifier({
    issuer: SUPABASE_ISSUER,
    audience: "authenticated",
    secret: SUPABASE_SECRET,
    algorithms: ["HS256"],
    clockToleranceS: 30,
  });
  // Supabase's claims: no top-level email_verified; user_metadata is editable by the user.
  const token = mintHs256(SUPABASE_SECRET, {
    iss: SUPABASE_ISSUER,
    aud: "authenticated",
    sub: "5f0c8e9a-1b2c-4d3e-8f70-123456789abc",
    email: "ada@example.test",
    phone: "",
    role: "authenticated",
    aal: "aal1",
    session_id: "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
    is_anonymous: false,
    app_metadata: { provider: "email", providers: ["email"] },
    user_metadata: { email_verified: true },
    iat: NOW_S,
    exp: NOW_S + 3600,
  });
  assert.deepEqual(await verifier.verify(token, NOW), {
    issuer: SUPABASE_ISSUER,
    subject: "5f0c8e9a-1b2c-4d3e-8f70-123456789abc",
    email: "ada@example.test",
    emailVerified: false,
  });
});

Deno.test("external verifier accepts an aud array that contains the audience", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const token = mint(RSA_KEY, claims({ aud: ["https://idp.example.test/userinfo", AUDIENCE] }));
  assert.equal((await verifier.verify(token, NOW)).subject, SUBJECT);
});

Deno.test("external verifier accepts a rotated-in key after refetching the JWKS", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url, jwksCooldownMs: 0 }));
  await verifier.verify(mint(RSA_KEY), NOW);
  assert.equal(jwks.requests, 1);
  jwks.setKeys([RSA_KEY.jwk, RSA_NEXT_KEY.jwk]);
  assert.equal((await verifier.verify(mint(RSA_NEXT_KEY), NOW)).subject, SUBJECT);
  assert.equal(jwks.requests, 2);
  await verifier.verify(mint(RSA_KEY), NOW);
  assert.equal(jwks.requests, 2);
});

Deno.test("external verifier tolerates clockToleranceS of skew on exp, nbf and iat, not more", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const exp = NOW_S + 60;
  const expiring = mint(RSA_KEY, claims({ exp }));
  await verifier.verify(expiring, (exp + 29) * 1000 + 999);
  await assertRefused(verifier, expiring, /ERR_JWT_EXPIRED/, (exp + 30) * 1000);

  const nbf = NOW_S + 60;
  const early = mint(RSA_KEY, claims({ nbf, iat: nbf }));
  await verifier.verify(early, (nbf - 30) * 1000);
  await assertRefused(verifier, early, /"nbf"/, (nbf - 30) * 1000 - 1);

  await verifier.verify(mint(RSA_KEY, claims({ iat: NOW_S + 30 })), NOW);
  await assertRefused(verifier, mint(RSA_KEY, claims({ iat: NOW_S + 31 })), /in the future/);
});

Deno.test('external verifier reports emailVerified only for email_verified true or "true"', async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const cases: [Claims, string | null, boolean][] = [
    [{ email_verified: true }, "ada@example.test", true],
    [{ email_verified: "true" }, "ada@example.test", true],
    [{ email_verified: false }, "ada@example.test", false],
    [{ email_verified: "yes" }, "ada@example.test", false],
    [{ email_verified: 1 }, "ada@example.test", false],
    [{ email_verified: undefined }, "ada@example.test", false],
    [{ email: undefined, email_verified: true }, null, false],
    [{ email: 42, email_verified: true }, null, false],
  ];
  for (const [overrides, email, emailVerified] of cases) {
    const identity = await verifier.verify(mint(RSA_KEY, claims(overrides)), NOW);
    assert.deepEqual([identity.email, identity.emailVerified], [email, emailVerified]);
  }
});

// --- Attacks: every one ends in InvalidTokenError --------------------------------------------

Deno.test("external verifier refuses alg none in every spelling, without fetching keys", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const payload = b64url(claims());
  const signature = mint(RSA_KEY).split(".")[2];
  for (const alg of ["none", "None", "NONE", "nOnE"]) {
    await assertRefused(verifier, `${b64url({ alg, typ: "JWT" })}.${payload}.`, /ALG_NOT_ALLOWED/);
    await assertRefused(
      verifier,
      `${b64url({ alg, kid: RSA_KEY.kid })}.${payload}.${signature}`,
      /ALG_NOT_ALLOWED/,
    );
  }
  const unsigned = jwt.sign(JSON.stringify(claims()), "", { algorithm: "none" });
  await assertRefused(verifier, unsigned, /ALG_NOT_ALLOWED/);
  await assertRefused(verifier, `${b64url({ typ: "JWT" })}.${payload}.`, /ERR_JWS_INVALID/);
  assert.equal(jwks.requests, 0);
});

Deno.test("external verifier refuses HS256 signed with the RS256 public key (alg confusion)", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  // jsonwebtoken signs this without complaint: the PEM text simply becomes the HMAC key.
  const confused = [
    mintHs256(RSA_KEY.publicPem, claims()),
    mintHs256(JSON.stringify(RSA_KEY.jwk), claims()),
    mintHs256(RSA_KEY.publicPem, claims(), { keyid: RSA_KEY.kid }),
  ];
  const asymmetricOnly = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const both = createExternalVerifier(
    options({ jwksUrl: jwks.url, secret: SUPABASE_SECRET, algorithms: ["RS256", "HS256"] }),
  );
  for (const token of confused) {
    await assertRefused(asymmetricOnly, token, /ALG_NOT_ALLOWED/);
    await assertRefused(both, token, /SIGNATURE_VERIFICATION_FAILED/);
  }
  assert.equal(jwks.requests, 0);
  // The same verifier still takes each algorithm with its own key.
  await both.verify(mintHs256(SUPABASE_SECRET, claims()), NOW);
  await both.verify(mint(RSA_KEY), NOW);
  assert.equal(jwks.requests, 1);
});

Deno.test("external verifier refuses an algorithm outside the allowlist or unlike its key's", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk, RS512_KEY.jwk, EC_KEY.jwk]);
  const rs256Only = createExternalVerifier(
    options({ jwksUrl: jwks.url, algorithms: ["RS256"] }),
  );
  await assertRefused(rs256Only, mint(RS512_KEY), /ALG_NOT_ALLOWED/);
  await assertRefused(rs256Only, mint(EC_KEY), /ALG_NOT_ALLOWED/);
  // An RS512 token naming a key the JWKS pins to RS256 finds no key.
  const both = createExternalVerifier(
    options({ jwksUrl: jwks.url, algorithms: ["RS256", "RS512"] }),
  );
  const relabelled = mint(RSA_KEY, claims(), { algorithm: "RS512" });
  await assertRefused(both, relabelled, /NO_MATCHING_KEY/);
  await both.verify(mint(RS512_KEY), NOW);
});

Deno.test("external verifier refuses an expired token and one not valid yet", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  await assertRefused(
    verifier,
    mint(RSA_KEY, claims({ iat: NOW_S - 7200, exp: NOW_S - 3600 })),
    /ERR_JWT_EXPIRED/,
  );
  await assertRefused(verifier, mint(RSA_KEY, claims({ nbf: NOW_S + 600 })), /"nbf"/);
  await assertRefused(verifier, mint(RSA_KEY, claims({ exp: "tomorrow" })), /"exp"/);
});

Deno.test("external verifier refuses a wrong or missing issuer and audience", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const cases: [Claims, RegExp][] = [
    [{ iss: "https://evil.example.test/" }, /"iss"/],
    [{ iss: "https://idp.example.test" }, /"iss"/],
    [{ iss: undefined }, /"iss"/],
    [{ aud: "another-api" }, /"aud"/],
    [{ aud: ["another-api", "third-api"] }, /"aud"/],
    [{ aud: `${AUDIENCE} ` }, /"aud"/],
    [{ aud: undefined }, /"aud"/],
  ];
  for (const [overrides, reason] of cases) {
    await assertRefused(verifier, mint(RSA_KEY, claims(overrides)), reason);
  }
});

Deno.test("external verifier refuses a tampered payload and a signature by another key", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const [header, , signature] = mint(RSA_KEY).split(".");
  const otherPayload = mint(RSA_KEY, claims({ sub: "admin" })).split(".")[1];
  await assertRefused(
    verifier,
    `${header}.${otherPayload}.${signature}`,
    /SIGNATURE_VERIFICATION_FAILED/,
  );
  const forged = mint(ATTACKER_KEY, claims(), { keyid: RSA_KEY.kid });
  await assertRefused(verifier, forged, /SIGNATURE_VERIFICATION_FAILED/);
  await assertRefused(verifier, `${header}.${otherPayload}.`, /ERR_JWS/);
});

Deno.test("external verifier never trusts a key or key URL carried in the token header", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  await using attackerJwks = startJwksServer([ATTACKER_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const header = {
    alg: "RS256",
    kid: ATTACKER_KEY.kid,
    jku: attackerJwks.url,
    jwk: ATTACKER_KEY.jwk,
    x5u: attackerJwks.url,
  };
  const signed = mint(ATTACKER_KEY, claims(), { header });
  await assertRefused(verifier, signed, /NO_MATCHING_KEY/);
  assert.equal(attackerJwks.requests, 0);
});

Deno.test("external verifier refuses an unknown kid after one refetch, and only one per cooldown", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const eager = createExternalVerifier(options({ jwksUrl: jwks.url, jwksCooldownMs: 0 }));
  await eager.verify(mint(RSA_KEY), NOW);
  const unknown = mint(ATTACKER_KEY, claims(), { keyid: "kid-nobody-published" });
  await assertRefused(eager, unknown, /ERR_JWKS_NO_MATCHING_KEY/);
  assert.equal(jwks.requests, 2);

  const patient = createExternalVerifier(options({ jwksUrl: jwks.url }));
  await patient.verify(mint(RSA_KEY), NOW);
  for (let i = 0; i < 5; i++) {
    await assertRefused(patient, unknown, /ERR_JWKS_NO_MATCHING_KEY/);
  }
  assert.equal(jwks.requests, 3);
});

Deno.test("external verifier refuses an oversized token before parsing or fetching keys", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const huge = mint(RSA_KEY, claims({ padding: "x".repeat(100 * 1024) }));
  await assertRefused(verifier, huge, /longer than 8192 characters/);
  await assertRefused(verifier, "a".repeat(10 * 1024 * 1024), /longer than 8192 characters/);
  const strict = createExternalVerifier(options({ jwksUrl: jwks.url, maxTokenLength: 512 }));
  await assertRefused(strict, mint(RSA_KEY), /longer than 512 characters/);
  assert.equal(jwks.requests, 0);
});

Deno.test("external verifier refuses garbage", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  const token = mint(RSA_KEY);
  const [header, payload, signature] = token.split(".");
  const garbage = [
    "",
    " ",
    "a",
    "a.b.c",
    "..",
    "...",
    "not a token",
    `Bearer ${token}`,
    `${token}.`,
    ` ${token}`,
    `${header}.${payload}`,
    `${header}.${payload}.${signature}.x.y`,
    `${header}.${payload}.${signature}!`,
    `${header}.${b64url("not json")}.${signature}`,
    `${header}.${b64url([1, 2, 3])}.${signature}`,
    `${b64url("{")}.${payload}.${signature}`,
    `${b64url({ alg: "RS256", crit: ["exp"] })}.${payload}.${signature}`,
    "\u0000\u0001.\uffff.\ud800",
  ];
  for (const candidate of garbage) {
    await assertRefused(verifier, candidate, /./);
  }
  await assertRefused(verifier, null as unknown as string, /empty/);
});

Deno.test("external verifier refuses a token without a usable subject or expiry", async () => {
  await using jwks = startJwksServer([RSA_KEY.jwk]);
  const verifier = createExternalVerifier(options({ jwksUrl: jwks.url }));
  await assertRefused(verifier, mint(RSA_KEY, claims({ sub: undefined })), /"sub"/);
  await assertRefused(verifier, mint(RSA_KEY, claims({ sub: "" })), /no subject/);
  await assertRefused(verifier, mint(RSA_KEY, claims({ sub: 42 })), /no subject/);
  await assertRefused(verifier, mint(RSA_KEY, claims({ exp: undefined })), /"exp"/);
});

Deno.test("external verifier refuses every token when the JWKS server is down or failing", async () => {
  const jwks = startJwksServer([RSA_KEY.jwk]);
  const url = jwks.url;
  await jwks.close();
  const verifier = createExternalVerifier(options({ jwksUrl: url }));
  await assertRefused(verifier, mint(RSA_KEY), /JWKS unavailable/);

  await using failing = startJwksServer([RSA_KEY.jwk]);
  failing.setStatus(503);
  const other = createExternalVerifier(options({ jwksUrl: failing.url }));
  await assertRefused(other, mint(RSA_KEY), /JWKS unavailable/);
  failing.setStatus(200);
  await other.verify(mint(RSA_KEY), NOW);
});

// --- Options and peekIssuer ------------------------------------------------------------------

Deno.test("createExternalVerifier refuses unsafe or incomplete options", () => {
  const jwksUrl = "https://idp.example.test/.well-known/jwks.json";
  const secret = SUPABASE_SECRET;
  const bad: [Partial<ExternalAuthOptions>, RegExp][] = [
    [{ jwksUrl, algorithms: [] }, /at least one algorithm/],
    [{ jwksUrl, algorithms: ["none"] }, /"none" is never accepted/],
    [{ jwksUrl, algorithms: ["RS256", "NONE"] }, /"NONE" is never accepted/],
    [{ jwksUrl, algorithms: ["RS1"] }, /"RS1" is not supported/],
    [{ algorithms: ["RS256"] }, /"RS256" needs a jwksUrl/],
    [{ algorithms: ["HS256"] }, /"HS256" needs a secret/],
    [{ algorithms: ["HS256"], secret: "short-secret" }, /"HS256" needs a secret of 32\+/],
    [{ jwksUrl, issuer: "" }, /issuer must be/],
    [{ jwksUrl, audience: "" }, /audience must be/],
    [{ jwksUrl: "not a url" }, /is not a URL/],
    [{ jwksUrl: "http://idp.example.test/jwks.json" }, /must use https/],
    [{ jwksUrl, clockToleranceS: -1 }, /clockToleranceS/],
    [{ jwksUrl, clockToleranceS: Number.NaN }, /clockToleranceS/],
    [{ jwksUrl, maxTokenLength: 0 }, /maxTokenLength/],
    [{ jwksUrl, jwksCooldownMs: -5 }, /jwksCooldownMs/],
  ];
  for (const [overrides, message] of bad) {
    assert.throws(() => createExternalVerifier(options(overrides)), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /^Cannot create the verifier: /);
      assert.match(error.message, message);
      return true;
    });
  }
  createExternalVerifier(options({ jwksUrl }));
  createExternalVerifier(options({ jwksUrl: "http://localhost:9999/jwks.json" }));
  createExternalVerifier(options({ algorithms: ["HS256"], secret }));
});

Deno.test("peekIssuer reads the issuer of a token without verifying it", () => {
  assert.equal(peekIssuer(mint(RSA_KEY)), ISSUER);
  assert.equal(peekIssuer(mint(ATTACKER_KEY)), ISSUER);
  assert.equal(peekIssuer(mintHs256(SUPABASE_SECRET, { iss: SUPABASE_ISSUER })), SUPABASE_ISSUER);
  assert.equal(
    peekIssuer(`${b64url({ alg: "none" })}.${b64url({ iss: "ü-issuer" })}.`),
    "ü-issuer",
  );
});

Deno.test("peekIssuer gives null for garbage and huge input without throwing", () => {
  const token = mint(RSA_KEY);
  const [header, , signature] = token.split(".");
  const cases: unknown[] = [
    "",
    "a",
    "a.b.c",
    "...",
    "\ud800.\ud800.\ud800",
    `${header}.${b64url({ iss: 42 })}.${signature}`,
    `${header}.${b64url({ iss: "" })}.${signature}`,
    `${header}.${b64url({ sub: "x" })}.${signature}`,
    `${header}.${b64url([ISSUER])}.${signature}`,
    `${header}.${b64url("null")}.${signature}`,
    `${header}.${b64url("not json")}.${signature}`,
    `${header}.${Buffer.from([0xff, 0xfe, 0xfd]).toString("base64url")}.${signature}`,
    `${header}.${b64url({ iss: ISSUER })}=.${signature}`,
    `${header}.a.${signature}`,
    `${header}.${b64url({ iss: ISSUER })}`,
    `not-json.${b64url({ iss: ISSUER })}.${signature}`,
    `${token}.x.y`,
    `${header}.${b64url({ iss: ISSUER, padding: "x".repeat(100 * 1024) })}.${signature}`,
    "a".repeat(50 * 1024 * 1024),
    ".".repeat(50 * 1024 * 1024),
    null,
    undefined,
    42,
    { iss: ISSUER },
  ];
  for (const candidate of cases) {
    assert.equal(peekIssuer(candidate as string), null);
  }
  assert.equal(peekIssuer(token, { maxLength: 100 }), null);
  const big = mint(RSA_KEY, claims({ padding: "x".repeat(10_000) }));
  assert.equal(peekIssuer(big, { maxLength: 20_000 }), ISSUER);
});
