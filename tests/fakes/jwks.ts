/**
 * A fake identity provider's key material: signing keys made with node:crypto and a local JWKS
 * endpoint serving their public halves, as an outside provider would.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";

/** Asymmetric algorithms {@linkcode createSigningKey} makes keys for. */
export type SigningAlgorithm = "RS256" | "RS384" | "RS512" | "ES256";

/** A public key as a JWKS lists it. */
export interface PublicJwk extends JsonWebKey {
  kid: string;
  alg: string;
  use: "sig";
}

/** A key pair of a fake provider, with its public half as a JWK and as SPKI PEM. */
export interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  jwk: PublicJwk;
}

/** A running JWKS endpoint. */
export interface JwksServer extends AsyncDisposable {
  /** The JWKS URL, on 127.0.0.1. */
  readonly url: string;
  /** The keys currently served. */
  readonly keys: readonly PublicJwk[];
  /** How many JWKS requests have been answered. */
  readonly requests: number;
  /** Serves `keys` from the next request on (a key rotation). */
  setKeys(keys: readonly PublicJwk[]): void;
  /** Answers with `status` and no keys from the next request on; 200 serves keys again. */
  setStatus(status: number): void;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Makes an RSA 2048 or P-256 key pair for `alg`, named `kid`. */
export function createSigningKey(alg: SigningAlgorithm, kid: string): SigningKey {
  const { privateKey, publicKey } = alg === "ES256"
    ? generateKeyPairSync("ec", { namedCurve: "P-256" })
    : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk: PublicJwk = { ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" };
  const publicPem = publicKey.export({ format: "pem", type: "spki" }).toString();
  return { kid, alg, privateKey, publicKey, publicPem, jwk };
}

/**
 * Serves `keys` as a JWKS at `/.well-known/jwks.json` on a free loopback port.
 *
 * @example
 * await using jwks = startJwksServer([key.jwk]);
 * const verifier = createExternalVerifier({ jwksUrl: jwks.url, ... });
 */
export function startJwksServer(keys: readonly PublicJwk[] = []): JwksServer {
  let served = [...keys];
  let status = 200;
  let requests = 0;
  let closed: Promise<void> | undefined;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    if (new URL(request.url).pathname !== "/.well-known/jwks.json") {
      return new Response("not found", { status: 404 });
    }
    requests++;
    if (status !== 200) return new Response("unavailable", { status });
    return Response.json({ keys: served }, {
      headers: { "content-type": "application/jwk-set+json" },
    });
  });
  const close = () => closed ??= server.shutdown();
  return {
    url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    get keys() {
      return served;
    },
    get requests() {
      return requests;
    },
    setKeys(next) {
      served = [...next];
    },
    setStatus(next) {
      status = next;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
