/** The HTTP application: the middleware stack, every route, the docs and the error handling. */
import { OpenAPIHono } from "@hono/zod-openapi";
import { swaggerUI } from "@hono/swagger-ui";
import type { Context } from "hono";
import { TrieRouter } from "hono/router/trie-router";
import { SignalAccepter } from "../db/signals.ts";
import { WebhookKeyFinder } from "../db/webhook_keys.ts";
import { ApiError } from "../lib/errors.ts";
import type { AppDeps, AppEnv } from "./_env.ts";
import { renderError } from "./_errors.ts";
import {
  accessLog,
  bodyLimit,
  corsPolicy,
  rateLimit,
  requestId,
  securityHeaders,
  timing,
} from "./_middleware.ts";
import { validationHook } from "./_openapi.ts";
import { admin } from "./admin.ts";
import { accounts } from "./accounts.ts";
import { api } from "./api.ts";
import { me } from "./me.ts";
import { createAppMetrics, metricsRoute, recordMetrics } from "./metrics.ts";
import { auth } from "./auth.ts";
import { health } from "./health.ts";
import { keys } from "./keys.ts";
import { watchlists } from "./watchlists.ts";
import { notifications } from "./notifications.ts";
import { webhooks } from "./webhooks.ts";
import { barWebhooks } from "./webhooks_bars.ts";
import { ws } from "./ws.ts";
import { pages } from "./pages/mod.ts";
import { notFoundPage } from "./pages/_page.tsx";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/**
 * Builds the app for `deps`. Tests call `createApp(deps).request(...)`; `main.ts` serves it.
 *
 * @example
 * const app = createApp(deps);
 * const res = await app.request("/health");
 */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  deps.metrics ??= createAppMetrics(deps.bus);
  deps.webhookKeys ??= new WebhookKeyFinder(deps.db);
  deps.signals ??= new SignalAccepter(deps.db);

  app.use(
    "*",
    requestId(deps),
    timing(),
    recordMetrics(deps.metrics),
    corsPolicy({
      origins: deps.config.corsOrigins,
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      allowHeaders: [
        "Authorization",
        "Content-Type",
        "X-Request-ID",
        "X-API-Key",
        "X-CSRF-Token",
      ],
      exposeHeaders: [
        "X-Request-ID",
        "X-API-Version",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "Retry-After",
      ],
      maxAge: 600,
    }),
    securityHeaders(),
    rateLimit(),
    accessLog(),
    bodyLimit(deps.config.maxBodyBytes),
  );

  app.route("/", health);
  app.route("/", metricsRoute);
  app.route("/", webhooks);
  app.route("/", barWebhooks);
  app.route("/", auth);
  app.route("/", me);
  app.route("/", admin);
  app.route("/", api);
  app.route("/", keys);
  app.route("/", watchlists);
  app.route("/", notifications);
  app.route("/", accounts);
  app.route("/", ws);
  app.route("/", pages);

  if (deps.config.env !== "production") {
    app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", {
      type: "http",
      scheme: "bearer",
      bearerFormat: "JWT",
      description: "An access token from /api/v1/auth/login, or the identity provider's JWT. " +
        "The dashboard sends the te_access cookie instead, with X-CSRF-Token on changes.",
    });
    app.openAPIRegistry.registerComponent("securitySchemes", "OperatorKey", {
      type: "apiKey",
      in: "header",
      name: "X-API-Key",
    });
    app.doc31("/openapi.json", {
      openapi: "3.1.0",
      info: {
        title: "trendedge API",
        version: deps.config.version,
        description: "Trading signals in, broker orders out. Errors always use the `Error` body.",
      },
    });
    app.get("/docs", swaggerUI({ url: "/openapi.json", title: "trendedge API" }));
  }

  const allowed = allowedMethods(app);
  app.notFound((c) => {
    const methods = allowed(c.req.path);
    if (methods.length > 0) {
      return renderError(
        c,
        new ApiError(
          "METHOD_NOT_ALLOWED",
          `Cannot ${c.req.method} ${c.req.path}: allowed methods are ${methods.join(", ")}`,
          {
            headers: { Allow: methods.join(", ") },
          },
        ),
      );
    }
    if (
      c.req.method === "GET" && !c.req.path.startsWith("/api/") &&
      c.req.header("accept")?.includes("text/html")
    ) {
      return notFoundPage(c as Context<AppEnv>);
    }
    return renderError(c, new ApiError("NOT_FOUND", `Cannot find ${c.req.path}`));
  });
  app.onError((error, c) => renderError(c as Context<AppEnv>, error));
  return app;
}

/** Which methods have a route at a path, for 405 answers; built once, on first use. */
function allowedMethods(app: OpenAPIHono<AppEnv>): (path: string) => string[] {
  let router: TrieRouter<string> | undefined;
  return (path) => {
    if (!router) {
      router = new TrieRouter<string>();
      for (const route of app.routes) {
        if (route.method !== "ALL") router.add(route.method, route.path, route.method);
      }
    }
    const methods: string[] = METHODS.filter((m) => router!.match(m, path)[0].length > 0);
    return methods.includes("GET") ? ["GET", "HEAD", ...methods.slice(1)] : methods;
  };
}
