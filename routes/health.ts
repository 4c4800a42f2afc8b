/** Liveness, readiness and the operator's detailed view. */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { checkReadiness } from "../lib/health.ts";
import { requireOperatorKey } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import { ErrorSchema, validationHook } from "./_openapi.ts";

/** How long a readiness probe may take before its dependency counts as down. */
const PROBE_TIMEOUT_MS = 2_000;

const Liveness = z.object({
  status: z.literal("ok"),
  version: z.string(),
  timestamp: z.string(),
}).openapi("Liveness");

const Check = z.object({
  status: z.enum(["ok", "error"]),
  latency_ms: z.number(),
  message: z.string().optional(),
}).catchall(z.unknown()).openapi("Check");

const Readiness = z.object({
  status: z.enum(["ok", "degraded"]),
  checks: z.record(z.string(), Check),
}).openapi("Readiness");

const Detailed = Readiness.extend({
  version: z.string(),
  environment: z.string(),
  uptime_s: z.number(),
  database_engine: z.string(),
  memory: z.record(z.string(), z.number()),
}).catchall(z.unknown()).openapi("HealthDetailed");

/** `/health`, `/health/ready`, `/health/detailed`. */
export const health = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

health.openapi(
  createRoute({
    method: "get",
    path: "/health",
    tags: ["health"],
    summary: "Liveness: the process is up",
    responses: {
      200: { description: "Alive", content: { "application/json": { schema: Liveness } } },
    },
  }),
  (c) => {
    const { config, clock } = c.get("deps");
    return c.json({
      status: "ok" as const,
      version: config.version,
      timestamp: new Date(clock.now()).toISOString(),
    });
  },
);

health.openapi(
  createRoute({
    method: "get",
    path: "/health/ready",
    tags: ["health"],
    summary: "Readiness: database, KV and actors answer",
    responses: {
      200: { description: "Ready", content: { "application/json": { schema: Readiness } } },
      503: {
        description: "A dependency is down",
        content: { "application/json": { schema: Readiness } },
      },
    },
  }),
  async (c) => {
    const report = await checkReadiness(c.get("deps").probes, PROBE_TIMEOUT_MS);
    c.header("Cache-Control", "no-store");
    return report.status === "ok" ? c.json(report, 200) : c.json(report, 503);
  },
);

health.openapi(
  createRoute({
    method: "get",
    path: "/health/detailed",
    tags: ["health"],
    summary: "Full diagnostics for operators",
    security: [{ OperatorKey: [] }],
    responses: {
      200: { description: "Diagnostics", content: { "application/json": { schema: Detailed } } },
      401: {
        description: "Missing or wrong operator key",
        content: { "application/json": { schema: ErrorSchema } },
      },
      503: {
        description: "A dependency is down",
        content: { "application/json": { schema: Detailed } },
      },
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    requireOperatorKey(c, "show diagnostics");
    const [report, extra] = await Promise.all([
      checkReadiness(deps.probes, PROBE_TIMEOUT_MS),
      deps.details?.() ?? Promise.resolve({}),
    ]);
    const memory = Deno.memoryUsage();
    const body = {
      ...report,
      ...extra,
      version: deps.config.version,
      environment: deps.config.env,
      uptime_s: Math.round((deps.clock.now() - deps.startedAt) / 1000),
      database_engine: deps.db.engine,
      memory: {
        rss: memory.rss,
        heap_used: memory.heapUsed,
        heap_total: memory.heapTotal,
        external: memory.external,
      },
    };
    c.header("Cache-Control", "no-store");
    return report.status === "ok" ? c.json(body, 200) : c.json(body, 503);
  },
);
