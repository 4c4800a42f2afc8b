/**
 * Access tokens: JWTs signed with HS256 and our secret. Verification accepts HS256 only (never
 * `none`, never an algorithm the token picks) and checks issuer, audience, expiry and
 * not-before with a small clock tolerance.
 */
import { errors, jwtVerify, SignJWT } from "jose";

/** Issuer and audience of every token we sign. */
export const JWT_ISSUER = "trendedge";
/** The audience every token must name. */
export const JWT_AUDIENCE = "trendedge";
/** Default lifetime of an access token, in seconds. */
export const ACCESS_TOKEN_TTL_S = 3600;
/** Allowed clock skew between instances, in seconds. */
export const CLOCK_TOLERANCE_S = 30;

const ALGORITHM = "HS256";

/** A user's role. */
export type Role = "admin" | "trader";

/** What an access token says about its bearer. */
export interface AccessClaims {
  userId: string;
  role: Role;
  /** The session (refresh-token family) the token was issued for (`sid`). */
  sessionId: string;
}

/** Options of {@linkcode signAccessToken}. */
export interface SignAccessTokenOptions {
  secret: string;
  /** Epoch ms of issuance. */
  now: number;
  /** Lifetime in seconds (default {@linkcode ACCESS_TOKEN_TTL_S}). */
  ttlS?: number;
}

/** Options of {@linkcode verifyAccessToken}. */
export interface VerifyAccessTokenOptions {
  secret: string;
  /** Epoch ms to check `exp` and `nbf` against. */
  now: number;
}

/** A token that is malformed, forged, expired or not meant for us. */
export class InvalidTokenError extends Error {
  override name = "InvalidTokenError";
}

/**
 * Signs an access token for `claims`, valid from `now` for `ttlS` seconds.
 *
 * @example
 * const token = await signAccessToken({ userId, role: "trader" }, { secret, now: Date.now() });
 */
export function signAccessToken(
  claims: AccessClaims,
  options: SignAccessTokenOptions,
): Promise<string> {
  const iat = Math.floor(options.now / 1000);
  return new SignJWT({ role: claims.role, sid: claims.sessionId })
    .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
    .setIssuer(JWT_ISSUER)
    .setAudience(JWT_AUDIENCE)
    .setSubject(claims.userId)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + (options.ttlS ?? ACCESS_TOKEN_TTL_S))
    .setJti(crypto.randomUUID())
    .sign(secretKey(options.secret));
}

/**
 * The claims of a valid token; throws {@linkcode InvalidTokenError} for anything else (bad
 * signature, another algorithm, wrong issuer or audience, expired, not yet valid, bad claims).
 */
export async function verifyAccessToken(
  token: string,
  options: VerifyAccessTokenOptions,
): Promise<AccessClaims> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secretKey(options.secret), {
      algorithms: [ALGORITHM],
      issuer: JWT_ISSUER,
      audience: JWT_AUDIENCE,
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(options.now),
      requiredClaims: ["sub", "exp", "iat", "jti", "sid"],
    }));
  } catch (error) {
    if (error instanceof errors.JOSEError) {
      throw new InvalidTokenError(`Cannot accept the token: ${error.code}`, { cause: error });
    }
    throw new InvalidTokenError("Cannot accept the token: it is malformed", { cause: error });
  }
  const { sub, role, sid } = payload;
  if (typeof sub !== "string" || sub.length === 0) {
    throw new InvalidTokenError("Cannot accept the token: it has no subject");
  }
  if (typeof sid !== "string" || sid.length === 0) {
    throw new InvalidTokenError("Cannot accept the token: it has no session");
  }
  if (role !== "admin" && role !== "trader") {
    throw new InvalidTokenError("Cannot accept the token: it has no valid role");
  }
  return { userId: sub, role, sessionId: sid };
}

function secretKey(secret: string): Uint8Array {
  if (secret.length < 32) throw new Error("Cannot use the JWT secret: it must be 32+ characters");
  return new TextEncoder().encode(secret);
}
