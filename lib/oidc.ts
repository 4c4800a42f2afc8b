/** Placeholder replaced by the external identity provider verifier (branch oidc). */
import type { InvalidTokenError as _I } from "./jwt.ts";

/** An identity asserted by an external provider. */
export interface ExternalIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  emailVerified: boolean;
}

/** Verifies an external provider's tokens. */
export interface ExternalVerifier {
  readonly issuer: string;
  verify(token: string, now: number): Promise<ExternalIdentity>;
}

/** The `iss` of a compact JWS without verifying it; null when unreadable. */
export function peekIssuer(token: string): string | null {
  if (token.length > 16_384) return null;
  try {
    const part = token.split(".")[1];
    if (!part) return null;
    const json = JSON.parse(atob(part.replaceAll("-", "+").replaceAll("_", "/")));
    return typeof json?.iss === "string" ? json.iss : null;
  } catch {
    return null;
  }
}
