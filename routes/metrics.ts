/**
 * `GET /metrics`: Prometheus text format for operators (`X-API-Key` or `Authorization: Bearer`
 * with OPERATOR_API_KEY). Requests are counted by the route pattern (never the raw path, so ids
 * cannot blow up the series), the pipeline's events by outcome, and live state — queue depths,
 * breaker states, mailboxes, event-loop lag, memory — is read at each scrape.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { EventBus } from "../lib/events.ts";
import { type Counter, type Histogram, Registry } from "../lib/metrics.ts";
import { requireOperatorKey } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import { ErrorSchema, json, validationHook } from "./_openapi.ts";

/** The metrics of the HTTP app and the pipeline. */
export interface AppMetrics {
  registry: Registry;
  requests: Counter;
  duration: Histogram;
  signals: Counter;
  orders: Counter;
}

/** Builds the registry with the request and pipeline metrics, counting `bus` events. */
export function createAppMetrics(bus?: EventBus): AppMetrics {
  const registry = new Registry();
  const metrics: AppMetrics = {
    registry,
    requests: registry.counter(
      "trendedge_http_requests_total",
      "HTTP requests by method, route pattern and status",
    ),
    duration: registry.histogram(
      "trendedge_http_request_duration_seconds",
      "HTTP request latency by method and route pattern",
    ),
    signals: registry.counter(
      "trendedge_signals_total",
      "Signals by outcome: accepted, duplicate, rejected, failed",
    ),
    orders: registry.counter(
      "trendedge_orders_total",
      "Order status changes reported by the broker, by broker and status",
    ),
  };
  bus?.subscribe((event) => {
    if (event.origin !== undefined) return; // counted by the instance it happened on
    switch (event.type) {
      case "signal.received":
        metrics.signals.inc({ status: "accepted" });
        break;
      case "signal.rejected":
        metrics.signals.inc({ status: String(event.data.status ?? "rejected") });
        break;
      case "trade.created":
      case "trade.updated":
        metrics.orders.inc({
          broker: String(event.data.broker ?? "unknown"),
          status: String(event.data.status ?? "unknown"),
        });
        break;
      default:
        break;
    }
  });
  return metrics;
}

/** Counts every request and its latency under the pattern of the route that answered it. */
export function recordMetrics(metrics: AppMetrics): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = routeOf(c);
      const method = c.req.method;
      metrics.requests.inc({ method, route, status: String(c.res.status) });
      metrics.duration.observe({ method, route }, (performance.now() - started) / 1000);
    }
  });
}

/** The metrics route; mount with `app.route("/", metricsRoute)`. */
export const metricsRoute = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

metricsRoute.openapi(
  createRoute({
    method: "get",
    path: "/metrics",
    tags: ["health"],
    summary: "Prometheus metrics (operator key)",
    security: [{ OperatorKey: [] }],
    responses: {
      200: {
        description: "Metrics in the Prometheus text format",
        content: { "text/plain": { schema: z.string() } },
      },
      401: json(ErrorSchema, "Missing or wrong operator key"),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    requireOperatorKey(c, "show metrics");
    const text = await deps.metrics!.registry.render();
    c.header("Cache-Control", "no-store");
    return c.text(text, 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
  },
);

function routeOf(c: Context<AppEnv>): string {
  try {
    const handler = matchedRoutes(c).filter((r) => r.method !== "ALL").at(-1);
    return handler?.path ?? "unmatched";
  } catch {
    return "unmatched";
  }
}
