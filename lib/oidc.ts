/**
 * Verifies JWTs issued by an external identity provider (Supabase, WorkOS, Auth0, any OIDC
 * provider): asymmetric algorithms against the provider's JWKS, HS* against a shared secret.
 * The token never picks its own algorithm or key: the allowlist is fixed at creation, `none` is
 * refused, HS* tokens only ever meet the shared secret and asymmetric ones only the JWKS.
 */
import { createRemoteJWKSet, errors, jwtVerify } from "jose";
import type { JWSHeaderParameters, JWTVerifyGetKey } from "jose";
import { InvalidTokenError } from "./jwt.ts";

/** Tokens longer than this many characters are refused unless configured otherwise. */
export const DEFAULT_MAX_TOKEN_LENGTH = 8192;

const SYMMETRIC_ALGORITHMS = new Set(["HS256", "HS384", "HS512"]);
const ASYMMETRIC_ALGORITHMS = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
]);
const MIN_SECRET_LENGTH = 32;
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** How to verify tokens of one external issuer. */
export interface ExternalAuthOptions {
  /** Expected `iss` claim (exact match). */
  issuer: string;
  /** Expected `aud` (the token's aud may be a string or an array containing it). */
  audience: string;
  /** JWKS URL for asymmetric algorithms (RS256, ES256, ...); https unless on loopback. */
  jwksUrl?: string;
  /** Shared secret for HS256 (e.g. Supabase's legacy JWT secret). */
  secret?: string;
  /** Allowlist of algorithms; never "none". Asymmetric ones require jwksUrl, HS* require secret. */
  algorithms: string[];
  /** Seconds of clock skew tolerated on exp/nbf/iat. */
  clockToleranceS: number;
  /** Tokens longer than this many characters are refused before any parsing (default 8192). */
  maxTokenLength?: number;
  /** Milliseconds a JWKS request may take (default 5000). */
  jwksTimeoutMs?: number;
  /**
   * Milliseconds after a JWKS fetch during which an unknown `kid` does not trigger another fetch
   * (default 30000), so tokens with made-up key ids cannot hammer the provider.
   */
  jwksCooldownMs?: number;
  /** Milliseconds a fetched JWKS is used before it is fetched again (default 600000). */
  jwksCacheMaxAgeMs?: number;
}

/** Who an external token says its bearer is. */
export interface ExternalIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  /** True only when the token says `email_verified: true` (boolean true, or the string "true"). */
  emailVerified: boolean;
}

/** Verifies tokens of one external issuer. */
export interface ExternalVerifier {
  readonly issuer: string;
  /** Verifies `token` at epoch-ms `now`; throws InvalidTokenError (import from ./jwt.ts) for anything not acceptable. */
  verify(token: string, now: number): Promise<ExternalIdentity>;
}

/** Options of {@linkcode peekIssuer}. */
export interface PeekIssuerOptions {
  /** Longer input gives null without being read (default {@linkcode DEFAULT_MAX_TOKEN_LENGTH}). */
  maxLength?: number;
}

/** Marks a failure to obtain or use the provider's JWKS, as opposed to a bad token. */
class JwksUnavailableError extends Error {
  override name = "JwksUnavailableError";
}

/**
 * Builds a verifier for one external issuer; throws TypeError when the options are unsafe or
 * incomplete.
 *
 * @example
 * const supabase = createExternalVerifier({
 *   issuer: "https://abcd.supabase.co/auth/v1",
 *   audience: "authenticated",
 *   jwksUrl: "https://abcd.supabase.co/auth/v1/.well-known/jwks.json",
 *   algorithms: ["ES256"],
 *   clockToleranceS: 30,
 * });
 * const identity = await supabase.verify(token, Date.now());
 */
export function createExternalVerifier(options: ExternalAuthOptions): ExternalVerifier {
  const { issuer, audience, clockToleranceS } = options;
  validateOptions(options);
  const maxTokenLength = options.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH;
  const algorithms = [...options.algorithms];
  const secret = options.secret === undefined
    ? undefined
    : new TextEncoder().encode(options.secret);
  const jwks = options.jwksUrl === undefined ? undefined : createRemoteJWKSet(
    new URL(options.jwksUrl),
    {
      timeoutDuration: options.jwksTimeoutMs ?? 5_000,
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
    },
  );

  // The key follows from the algorithm (already checked against the allowlist by jose), never
  // from anything else in the header: HS* meets only the secret, the rest only the JWKS.
  const getKey: JWTVerifyGetKey = async (header: JWSHeaderParameters, token) => {
    const alg = header.alg ?? "";
    if (SYMMETRIC_ALGORITHMS.has(alg) && secret !== undefined) return secret;
    if (!ASYMMETRIC_ALGORITHMS.has(alg) || jwks === undefined) {
      throw new errors.JOSEAlgNotAllowed("no key for this algorithm");
    }
    try {
      return await jwks(header, token);
    } catch (error) {
      if (
        error instanceof errors.JWKSNoMatchingKey ||
        error instanceof errors.JWKSMultipleMatchingKeys ||
        error instanceof errors.JOSENotSupported
      ) {
        throw error;
      }
      throw new JwksUnavailableError(jwksFailure(error), { cause: error });
    }
  };

  return {
    issuer,
    async verify(token, now) {
      if (typeof token !== "string" || token.length === 0) {
        throw new InvalidTokenError("Cannot accept the token: it is empty");
      }
      if (token.length > maxTokenLength) {
        throw new InvalidTokenError(
          `Cannot accept the token: it is longer than ${maxTokenLength} characters`,
        );
      }
      let payload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          algorithms,
          issuer,
          audience,
          clockTolerance: clockToleranceS,
          currentDate: new Date(now),
          requiredClaims: ["sub", "exp"],
        }));
      } catch (error) {
        throw new InvalidTokenError(`Cannot accept the token: ${failureReason(error)}`, {
          cause: error,
        });
      }
      const { sub, iat, email, email_verified: emailVerified } = payload;
      if (typeof sub !== "string" || sub.length === 0) {
        throw new InvalidTokenError("Cannot accept the token: it has no subject");
      }
      // jose checks iat only together with maxTokenAge; a token from the future is still wrong.
      if (typeof iat === "number" && iat > Math.floor(now / 1000) + clockToleranceS) {
        throw new InvalidTokenError("Cannot accept the token: it was issued in the future");
      }
      const address = typeof email === "string" && email.length > 0 ? email : null;
      return {
        issuer,
        subject: sub,
        email: address,
        emailVerified: address !== null && (emailVerified === true || emailVerified === "true"),
      };
    },
  };
}

/**
 * The `iss` claim of a compact JWS without verifying anything, or null if it cannot be read (for
 * routing a token to the right verifier only). Never throws; input longer than
 * `options.maxLength` is not read.
 */
export function peekIssuer(token: string, options: PeekIssuerOptions = {}): string | null {
  try {
    const maxLength = options.maxLength ?? DEFAULT_MAX_TOKEN_LENGTH;
    if (typeof token !== "string" || token.length > maxLength) return null;
    const parts = token.split(".");
    if (parts.length !== 3) return null;
    const header = decodeJsonObject(parts[0]!);
    const payload = decodeJsonObject(parts[1]!);
    if (header === null || payload === null) return null;
    const { iss } = payload;
    return typeof iss === "string" && iss.length > 0 ? iss : null;
  } catch {
    return null;
  }
}

function validateOptions(options: ExternalAuthOptions): void {
  const { issuer, audience, algorithms, jwksUrl, secret, clockToleranceS, maxTokenLength } =
    options;
  if (typeof issuer !== "string" || issuer.length === 0) {
    throw new TypeError("Cannot create the verifier: issuer must be a non-empty string");
  }
  if (typeof audience !== "string" || audience.length === 0) {
    throw new TypeError("Cannot create the verifier: audience must be a non-empty string");
  }
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new TypeError("Cannot create the verifier: algorithms must list at least one algorithm");
  }
  for (const alg of algorithms) {
    if (typeof alg !== "string" || alg.toLowerCase() === "none") {
      throw new TypeError(`Cannot create the verifier: algorithm "${alg}" is never accepted`);
    }
    if (SYMMETRIC_ALGORITHMS.has(alg)) {
      if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) {
        throw new TypeError(
          `Cannot create the verifier: "${alg}" needs a secret of ${MIN_SECRET_LENGTH}+ characters`,
        );
      }
    } else if (ASYMMETRIC_ALGORITHMS.has(alg)) {
      if (jwksUrl === undefined) {
        throw new TypeError(`Cannot create the verifier: "${alg}" needs a jwksUrl`);
      }
    } else {
      throw new TypeError(`Cannot create the verifier: algorithm "${alg}" is not supported`);
    }
  }
  if (jwksUrl !== undefined) validateJwksUrl(jwksUrl);
  if (!Number.isFinite(clockToleranceS) || clockToleranceS < 0) {
    throw new TypeError("Cannot create the verifier: clockToleranceS must be 0 or more");
  }
  if (maxTokenLength !== undefined && !(Number.isInteger(maxTokenLength) && maxTokenLength > 0)) {
    throw new TypeError("Cannot create the verifier: maxTokenLength must be a positive integer");
  }
  for (const name of ["jwksTimeoutMs", "jwksCooldownMs", "jwksCacheMaxAgeMs"] as const) {
    const value = options[name];
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
      throw new TypeError(`Cannot create the verifier: ${name} must be a non-negative integer`);
    }
  }
}

function validateJwksUrl(jwksUrl: string): void {
  let url;
  try {
    url = new URL(jwksUrl);
  } catch {
    throw new TypeError(`Cannot create the verifier: jwksUrl "${jwksUrl}" is not a URL`);
  }
  // Keys fetched over plain HTTP could be swapped in transit, which forges any token.
  if (
    url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname))
  ) {
    throw new TypeError(
      `Cannot create the verifier: jwksUrl "${jwksUrl}" must use https (http only on loopback)`,
    );
  }
}

function jwksFailure(error: unknown): string {
  if (error instanceof errors.JOSEError) return `JWKS unavailable (${error.code})`;
  return `JWKS unavailable (${error instanceof Error ? error.name : "unknown error"})`;
}

function failureReason(error: unknown): string {
  if (error instanceof JwksUnavailableError) return error.message;
  if (error instanceof errors.JWTClaimValidationFailed) return `${error.code} on "${error.claim}"`;
  if (error instanceof errors.JOSEError) return error.code;
  return "it is malformed";
}

function decodeJsonObject(part: string): Record<string, unknown> | null {
  if (!BASE64URL.test(part)) return null;
  const binary = atob(part.replaceAll("-", "+").replaceAll("_", "/"));
  const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  const value: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : null;
}
