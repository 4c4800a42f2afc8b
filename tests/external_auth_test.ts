/**
 * Tokens at the HTTP boundary: an outside identity provider's JWTs (minted by jsonwebtoken with
 * keys served from a local JWKS endpoint) mapped to local users, and the JWT attack suite
 * against both our own tokens and the provider's — every forgery is a 401, never a 500.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// @ts-types="@types/jsonwebtoken"
import jwt from "jsonwebtoken";
import { createUser } from "../db/users.ts";
import { signAccessToken } from "../lib/jwt.ts";
import type { ErrorBody } from "../routes/_errors.ts";
import { createTestApp } from "./_app.ts";
import { createTestDb } from "./_db.ts";
import { accessTokenFor } from "./_fixtures.ts";
import { createSigningKey, type SigningKey, startJwksServer } from "./fakes/jwks.ts";

const ISSUER = "https://idp.example.test/";
const AUDIENCE = "trendedge-api";
const HS_SECRET = "provider-shared-secret-0123456789-abcdefgh";
const KEY = createSigningKey("RS256", "rsa-1");
const EC = createSigningKey("ES256", "ec-1");
const STRANGER = createSigningKey("RS256", "stranger");

function env(jwksUrl: string, extra: Record<string, string> = {}) {
  return {
    OIDC_ISSUER: ISSUER,
    OIDC_AUDIENCE: AUDIENCE,
    OIDC_JWKS_URL: jwksUrl,
    ...extra,
  };
}

function claims(nowMs: number, overrides: Record<string, unknown> = {}) {
  const now = Math.floor(nowMs / 1000);
  const all: Record<string, unknown> = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "idp|ada",
    email: "ada@example.com",
    email_verified: true,
    iat: now,
    exp: now + 600,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

function mint(key: SigningKey, payload: Record<string, unknown>, kid = key.kid): string {
  return jwt.sign(JSON.stringify(payload), key.privateKey, { algorithm: key.alg, keyid: kid });
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

async function me(
  app: { request(p: string, i?: RequestInit): Response | Promise<Response> },
  token: string,
) {
  return await app.request("/api/v1/me", { headers: { Authorization: `Bearer ${token}` } });
}

async function assert401(res: Response, label: string) {
  assert.equal(res.status, 401, `${label}: expected 401, got ${res.status}`);
  const body = await res.json() as ErrorBody;
  assert.equal(body.error.code, "AUTHENTICATION_REQUIRED", label);
}

Deno.test("an identity provider's token reaches the API as the local user with that verified email", async () => {
  await using t = await createTestDb("pglite");
  await using jwks = startJwksServer([KEY.jwk, EC.jwk]);
  const h = createTestApp({ db: t.db, env: env(jwks.url) });
  await using _ = h;
  const ada = await createUser(t.db, { email: "Ada@Example.com", password: null });

  const res = await me(h.app, mint(KEY, claims(h.clock.now())));
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.id, ada.id);
  assert.equal(body.session_id, null);
  // ES256 from the same JWKS works too, and the link is remembered by subject.
  const ec = await me(h.app, mint(EC, claims(h.clock.now(), { email: undefined })));
  assert.equal(ec.status, 200);
  assert.equal((await ec.json()).id, ada.id);

  const [link] = await t.db.query<{ user_id: string; issuer: string }>(
    "SELECT user_id, issuer FROM external_identities WHERE subject = 'idp|ada'",
  );
  assert.deepEqual(link, { user_id: ada.id, issuer: ISSUER });
  const [audited] = await t.db.query<{ actor_id: string; data: { issuer: string } }>(
    "SELECT actor_id, data FROM audit_log WHERE action = 'identity.linked'",
  );
  assert.equal(audited?.actor_id, ada.id);
});

Deno.test("an unverified email, or an unknown one without auto-provisioning, gets no access", async () => {
  await using t = await createTestDb("pglite");
  await using jwks = startJwksServer([KEY.jwk]);
  const h = createTestApp({ db: t.db, env: env(jwks.url) });
  await using _ = h;
  await createUser(t.db, { email: "ada@example.com", password: null });
  await assert401(
    await me(h.app, mint(KEY, claims(h.clock.now(), { email_verified: false }))),
    "unverified",
  );
  await assert401(
    await me(h.app, mint(KEY, claims(h.clock.now(), { sub: "idp|eve", email: "eve@example.com" }))),
    "unknown email",
  );
  const [links] = await t.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM external_identities",
  );
  assert.equal(links?.n, 0);
});

Deno.test("with auto-provisioning a verified new email becomes a trader with a paper account", async () => {
  await using t = await createTestDb("pglite");
  await using jwks = startJwksServer([KEY.jwk]);
  const h = createTestApp({ db: t.db, env: env(jwks.url, { OIDC_AUTO_PROVISION: "true" }) });
  await using _ = h;
  await createUser(t.db, { email: "admin@example.com", password: null });
  const token = mint(KEY, claims(h.clock.now(), { sub: "idp|new", email: "new@example.com" }));
  const results = await Promise.all([me(h.app, token), me(h.app, token)]);
  const ids = new Set<string>();
  for (const r of results) {
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.role, "trader");
    ids.add(body.id);
  }
  assert.equal(ids.size, 1, "concurrent first requests provision one user");
  const [accounts] = await t.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM broker_accounts a JOIN users u ON u.id = a.user_id WHERE u.email = 'new@example.com'",
  );
  assert.equal(accounts?.n, 1);
});

Deno.test("JWT attack suite: every forgery of our tokens or the provider's is a 401", async () => {
  await using t = await createTestDb("pglite");
  await using jwks = startJwksServer([KEY.jwk]);
  const h = createTestApp({ db: t.db, env: env(jwks.url) });
  await using _ = h;
  const ada = await createUser(t.db, { email: "ada@example.com", password: null });
  const now = h.clock.now();
  const ours = await accessTokenFor(t.db, ada, { secret: h.config.jwtSecret, now });
  assert.equal((await me(h.app, ours.token)).status, 200, "control: our token works");
  assert.equal((await me(h.app, mint(KEY, claims(now)))).status, 200, "control: provider works");

  const [header, payload] = ours.token.split(".");
  const ourClaims = JSON.parse(Buffer.from(payload!, "base64url").toString());
  const attacks: Record<string, string> = {
    "alg none (ours)": `${b64url({ alg: "none", typ: "JWT" })}.${payload}.`,
    "alg none (provider)": `${b64url({ alg: "none" })}.${b64url(claims(now))}.`,
    "HS256 signed with the provider's RSA public key": jwt.sign(
      JSON.stringify(claims(now)),
      KEY.publicPem,
      { algorithm: "HS256", keyid: KEY.kid },
    ),
    "our claims signed with another secret": jwt.sign(
      JSON.stringify(ourClaims),
      "someone-elses-secret-0123456789-0123456789",
      { algorithm: "HS256" },
    ),
    "our claims as RS256": jwt.sign(JSON.stringify(ourClaims), KEY.privateKey, {
      algorithm: "RS256",
    }),
    "expired (ours)": await signAccessToken(
      { userId: ada.id, role: "admin", sessionId: ours.sessionId },
      { secret: h.config.jwtSecret, now: now - 2 * 3600_000 },
    ),
    "expired (provider)": mint(
      KEY,
      claims(now, { iat: now / 1000 - 7200, exp: now / 1000 - 3600 }),
    ),
    "not yet valid (provider)": mint(KEY, claims(now, { nbf: now / 1000 + 3600 })),
    "not yet valid (ours)": await signAccessToken(
      { userId: ada.id, role: "admin", sessionId: ours.sessionId },
      { secret: h.config.jwtSecret, now: now + 3600_000 },
    ),
    "wrong issuer": mint(KEY, claims(now, { iss: "https://evil.example/" })),
    "wrong audience": mint(KEY, claims(now, { aud: "someone-else" })),
    "tampered payload (ours)": `${header}.${
      b64url({ ...ourClaims, role: "admin", sub: "00000000-0000-7000-8000-000000000000" })
    }.${ours.token.split(".")[2]}`,
    "tampered payload (provider)": (() => {
      const [h1, , s1] = mint(KEY, claims(now)).split(".");
      return `${h1}.${b64url(claims(now, { sub: "idp|admin" }))}.${s1}`;
    })(),
    "unknown kid": mint(STRANGER, claims(now)),
    "a known kid, signed by a stranger": mint(STRANGER, claims(now), KEY.kid),
    "oversized": `${header}.${b64url({ ...ourClaims, pad: "x".repeat(20_000) })}.sig`,
    "garbage": "not.a.jwt",
    "three dots": "...",
    "non-ASCII": "\u00e9\u00fc.\u00df.\u00ff",
  };
  for (const [label, token] of Object.entries(attacks)) {
    await assert401(await me(h.app, token), label);
  }
  // A session that ended makes our otherwise valid token useless.
  await t.db.query("UPDATE sessions SET revoked_at = now() WHERE id = $1", [ours.sessionId]);
  await assert401(await me(h.app, ours.token), "revoked session");
  assert.ok(!h.lines.some((l) => l.level === "ERROR"), "no attack caused a server error");
});

Deno.test("when the JWKS endpoint is down, provider tokens get 401 and our own tokens still work", async () => {
  await using t = await createTestDb("pglite");
  const jwks = startJwksServer([KEY.jwk]);
  const url = jwks.url;
  await jwks.close();
  const h = createTestApp({ db: t.db, env: env(url) });
  await using _ = h;
  const ada = await createUser(t.db, { email: "ada@example.com", password: null });
  await assert401(await me(h.app, mint(KEY, claims(h.clock.now()))), "JWKS down");
  const ours = await accessTokenFor(t.db, ada, { secret: h.config.jwtSecret, now: h.clock.now() });
  assert.equal((await me(h.app, ours.token)).status, 200);
});

Deno.test("a Supabase-style HS256 secret works as the provider's key", async () => {
  await using t = await createTestDb("pglite");
  const h = createTestApp({
    db: t.db,
    env: {
      OIDC_ISSUER: "https://abcd.supabase.co/auth/v1",
      OIDC_AUDIENCE: "authenticated",
      OIDC_SECRET: HS_SECRET,
    },
  });
  await using _ = h;
  const ada = await createUser(t.db, { email: "ada@example.com", password: null });
  await t.db.query(
    "INSERT INTO external_identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
    ["https://abcd.supabase.co/auth/v1", "8f0e-supabase-uid", ada.id],
  );
  const now = Math.floor(h.clock.now() / 1000);
  const token = jwt.sign(
    JSON.stringify({
      iss: "https://abcd.supabase.co/auth/v1",
      aud: "authenticated",
      sub: "8f0e-supabase-uid",
      role: "authenticated",
      iat: now,
      exp: now + 3600,
    }),
    HS_SECRET,
    { algorithm: "HS256" },
  );
  const res = await me(h.app, token);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).id, ada.id);
  await assert401(
    await me(
      h.app,
      jwt.sign(
        JSON.stringify({
          iss: "https://abcd.supabase.co/auth/v1",
          aud: "authenticated",
          sub: "8f0e-supabase-uid",
          iat: now,
          exp: now + 3600,
        }),
        "x".repeat(40),
        { algorithm: "HS256" },
      ),
    ),
    "wrong secret",
  );
});
