/**
 * The request pipeline, outermost first: request id → timing → CORS → security headers →
 * rate limit → body limit → JSON access log; errors are rendered by `app.onError`
 * (`_errors.ts`) at the depth where they are thrown, so every layer above sees the final status.
 */
import type { Context, MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import { createMiddleware } from "hono/factory";
import { ApiError } from "../lib/errors.ts";
import type { AppDeps, AppEnv } from "./_env.ts";

/** The version of the API, sent as `X-API-Version` on every API response. */
export const API_VERSION = "v1";

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** Puts the deps on the context and assigns the request id (the client's, if well-formed). */
export function requestId(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    const incoming = c.req.header("x-request-id");
    const id = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.set("deps", deps);
    c.set("requestId", id);
    await next();
    // On the final response's headers: `c.header` after `next` copies the whole Response.
    c.res.headers.set("X-Request-ID", id);
  });
}

/** Measures the request and reports it in `Server-Timing` and `X-Response-Time`. */
export function timing(): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    const started = performance.now();
    c.set("startedAt", started);
    await next();
    const ms = (performance.now() - started).toFixed(1);
    const headers = c.res.headers; // not c.header: after `next` it copies the Response each time
    headers.set("Server-Timing", `app;dur=${ms}`);
    headers.set("X-Response-Time", `${ms}ms`);
  });
}

/** Options of {@linkcode corsPolicy}. */
export interface CorsOptions {
  /** Origins allowed to call with credentials. */
  origins: readonly string[];
  allowMethods: readonly string[];
  allowHeaders: readonly string[];
  exposeHeaders: readonly string[];
  maxAge: number;
}

/**
 * CORS with credentials for a list of origins: what `hono/cors` does with these options, but its
 * headers go on the final response's headers after `next` (the others' way). Touching `c.res`
 * before `next`, as `hono/cors` does, makes Hono copy the handler's whole Response and merge the
 * headers into it on every request.
 */
export function corsPolicy(options: CorsOptions): MiddlewareHandler<AppEnv> {
  const allowMethods = options.allowMethods.join(",");
  const allowHeaders = options.allowHeaders.join(",");
  const exposeHeaders = options.exposeHeaders.join(",");
  const maxAge = String(options.maxAge);
  const allowOrigin = (headers: Headers, origin: string) => {
    if (origin && options.origins.includes(origin)) {
      headers.set("Access-Control-Allow-Origin", origin);
    }
    headers.set("Access-Control-Allow-Credentials", "true");
    if (exposeHeaders) headers.set("Access-Control-Expose-Headers", exposeHeaders);
  };
  return createMiddleware<AppEnv>(async (c, next) => {
    const origin = c.req.header("origin") ?? "";
    if (c.req.method === "OPTIONS") {
      const headers = new Headers();
      allowOrigin(headers, origin);
      headers.append("Vary", "Origin");
      headers.set("Access-Control-Max-Age", maxAge);
      headers.set("Access-Control-Allow-Methods", allowMethods);
      headers.set("Access-Control-Allow-Headers", allowHeaders);
      headers.append("Vary", "Access-Control-Request-Headers");
      return new Response(null, { headers, status: 204, statusText: "No Content" });
    }
    await next();
    const headers = c.res.headers;
    allowOrigin(headers, origin);
    headers.append("Vary", "Origin");
  });
}

/** Content Security Policy for pages; `/docs` also loads Swagger UI from its CDN. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");
const DOCS_CSP = CSP.replace(
  "script-src 'self'",
  "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
)
  .replace(
    "style-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
  );

/** Sets the security headers on every response, errors included. */
export function securityHeaders(): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    await next();
    const h = c.res.headers;
    h.set("Strict-Transport-Security", "max-age=63072000; includeSubDomains");
    h.set("X-Content-Type-Options", "nosniff");
    h.set("X-Frame-Options", "DENY");
    h.set("Referrer-Policy", "strict-origin-when-cross-origin");
    h.set("Content-Security-Policy", c.req.path === "/docs" ? DOCS_CSP : CSP);
    h.set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()");
    h.set("Cross-Origin-Opener-Policy", "same-origin");
    h.set("X-Permitted-Cross-Domain-Policies", "none");
    h.delete("X-Powered-By");
    if (c.req.path.startsWith("/api/")) h.set("X-API-Version", API_VERSION);
  });
}

/** The client's address: the socket's, or the proxy's header when TRUST_PROXY is set. */
export function clientIp(c: Context<AppEnv>): string {
  if (c.get("deps").config.trustProxy) {
    const fly = c.req.header("fly-client-ip");
    if (fly) return fly.trim();
    const forwarded = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown"; // app.request() in tests has no socket
  }
}

/**
 * Limits API requests per client address, more tightly on `/api/v1/auth/*` (credential
 * guessing). Webhooks are left to their own per-key limit
 * (TradingView sends every trader's alerts from the same four addresses) and health probes
 * are never limited.
 */
export function rateLimit(): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    const path = c.req.path;
    if (!path.startsWith("/api/") || path.startsWith("/api/v1/webhooks/")) return next();
    const deps = c.get("deps");
    const result = path.startsWith("/api/v1/auth/")
      ? await deps.authLimiter.hit(`auth:${clientIp(c)}`)
      : await deps.rateLimiter.hit(`ip:${clientIp(c)}`);
    const headers = {
      "X-RateLimit-Limit": String(result.limit),
      "X-RateLimit-Remaining": String(result.remaining),
      "X-RateLimit-Reset": String(Math.ceil(result.resetAt / 1000)),
    };
    if (!result.allowed) {
      throw new ApiError("RATE_LIMITED", `Too many requests: limit is ${result.limit} per minute`, {
        headers: { ...headers, "Retry-After": String(result.retryAfterS) },
      });
    }
    await next();
    for (const [k, v] of Object.entries(headers)) c.res.headers.set(k, v);
  });
}

/**
 * Rejects bodies larger than `maxBytes` before they are read: by Content-Length when given,
 * else by counting the stream as it is consumed.
 */
export function bodyLimit(maxBytes: number): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>((c, next) => {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD" || method === "OPTIONS") return next();
    const tooLarge = () =>
      new ApiError(
        "PAYLOAD_TOO_LARGE",
        `Cannot accept the request body: it exceeds ${maxBytes} bytes`,
      );
    const declared = c.req.header("content-length");
    if (declared !== undefined) {
      if (!/^\d+$/.test(declared)) {
        throw new ApiError(
          "VALIDATION_ERROR",
          "Cannot read the request: Content-Length is malformed",
        );
      }
      if (Number(declared) > maxBytes) throw tooLarge();
      return next();
    }
    const body = c.req.raw.body;
    if (body) {
      let seen = 0;
      const counted = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            seen += chunk.byteLength;
            if (seen > maxBytes) controller.error(tooLarge());
            else controller.enqueue(chunk);
          },
        }),
      );
      c.req.raw = new Request(c.req.raw, { body: counted, duplex: "half" } as RequestInit);
    }
    return next();
  });
}

/** Writes one JSON access-log line per request, at the end, with its final status. */
export function accessLog(): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    // Read before: once a WebSocket upgrade has taken the request, its headers are gone.
    const ip = clientIp(c);
    const userAgent = c.req.header("user-agent") ?? null;
    await next();
    const { log } = c.get("deps");
    const status = c.res.status;
    const level = status >= 500 ? "error" : c.req.path === "/health" ? "debug" : "info";
    if (!log.enabled(level)) return;
    log[level]("Request completed", {
      request_id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status_code: status,
      duration_ms: Math.round((performance.now() - c.get("startedAt")) * 10) / 10,
      user_id: c.get("userId") ?? null,
      ip,
      user_agent: userAgent,
      response_bytes: Number(c.res.headers.get("content-length") ?? 0) || null,
    });
  });
}
