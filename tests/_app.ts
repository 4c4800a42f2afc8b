/** Builds the HTTP app over test doubles of nothing: a real config, a real database, real probes. */
import { loadConfig } from "../config.ts";
import type { Db } from "../db/client.ts";
import { FakeClock } from "../lib/clock.ts";
import { type LogFields, memoryLogger } from "../lib/log.ts";
import { createMemoryRateLimiter } from "../lib/rate_limit.ts";
import type { AppDeps } from "../routes/_env.ts";
import { createApp } from "../routes/mod.ts";

/** Options of {@linkcode createTestApp}. */
export interface TestAppOptions {
  db: Db;
  env?: Record<string, string>;
  probes?: AppDeps["probes"];
}

/** An app plus the log lines it wrote and the clock it reads. */
export function createTestApp(options: TestAppOptions) {
  const config = loadConfig({ APP_ENV: "test", ...options.env });
  const { log, lines } = memoryLogger("debug");
  const clock = new FakeClock();
  const deps: AppDeps = {
    config,
    log,
    db: options.db,
    clock,
    startedAt: clock.now(),
    rateLimiter: createMemoryRateLimiter({
      limit: config.rateLimitPerMinute,
      windowMs: 60_000,
      clock,
    }),
    probes: options.probes ?? {
      database: async () => ({ ping_ms: await options.db.ping(1000) }),
    },
  };
  const app = createApp(deps);
  return { app, deps, lines: lines as LogFields[], clock, config };
}
