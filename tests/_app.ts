/** Builds the HTTP app over test doubles of nothing: a real config, a real database, real probes. */
import { loadConfig } from "../config.ts";
import type { Db } from "../db/client.ts";
import { FakeClock } from "../lib/clock.ts";
import { type LogFields, memoryLogger } from "../lib/log.ts";
import { createAppLimiters } from "../lib/rate_limit.ts";
import { createExternalVerifier } from "../lib/oidc.ts";
import type { AppDeps } from "../routes/_env.ts";
import { createActor } from "../actors/actor.ts";
import type { IngestCommand } from "../actors/ingest.ts";
import { EventBus, type PipelineEvent } from "../lib/events.ts";
import { type BreakerStore, memoryBreakerStore, storedBreakerState } from "../db/breaker_store.ts";
import { createApp } from "../routes/mod.ts";
import { accessTokenFor } from "./_fixtures.ts";
import { configuredKeyring } from "../lib/crypto.ts";

/** Options of {@linkcode createTestApp}. */
export interface TestAppOptions {
  db: Db;
  env?: Record<string, string>;
  probes?: AppDeps["probes"];
  breakers?: BreakerStore;
  /** Redis key prefix of the shared rate limits when UPSTASH_* is set (one per test). */
  rateLimitPrefix?: string;
}

/**
 * An app plus the log lines it wrote, the clock it reads, the events and dispatches it made, and
 * the accounts whose executor it asked to restart.
 */
export function createTestApp(options: TestAppOptions) {
  const config = loadConfig({ APP_ENV: "test", ...options.env });
  const { log, lines } = memoryLogger("debug");
  const clock = new FakeClock();
  const bus = new EventBus(log);
  const breakers = options.breakers ?? memoryBreakerStore();
  const events: PipelineEvent[] = [];
  bus.subscribe((e) => events.push(e));
  // Accounts whose executor the routes asked to restart, in order.
  const changedAccounts: string[] = [];
  // A real actor that records what the routes dispatch (no executors in HTTP tests).
  const dispatched: IngestCommand[] = [];
  const ingest = createActor<null, IngestCommand>("ingest", {
    init: () => null,
    receive: (state, msg) => {
      dispatched.push(msg);
      return state;
    },
  }, { log, clock });
  const running = ingest.run();
  const deps: AppDeps = {
    config,
    log,
    db: options.db,
    clock,
    startedAt: clock.now(),
    ...createAppLimiters(
      {
        apiPerMinute: config.rateLimitPerMinute,
        authPerMinute: config.auth.ratePerMinute,
        webhookPerMinute: config.webhook.ratePerMinute,
      },
      clock,
      {
        shared: config.upstash &&
          { upstash: config.upstash, log, prefix: options.rateLimitPrefix },
      },
    ),
    bus,
    ingest: ingest.ref,
    externalAuth: config.auth.oidc ? createExternalVerifier(config.auth.oidc) : undefined,
    breakerState: (accountId) => storedBreakerState(breakers, accountId, clock),
    probes: options.probes ?? {
      database: async () => ({ ping_ms: await options.db.ping(1000) }),
    },
    keyring: configuredKeyring(config),
    accountChanged: (accountId) => {
      changedAccounts.push(accountId);
      return Promise.resolve();
    },
  };
  const app = createApp(deps);
  return {
    app,
    deps,
    lines: lines as LogFields[],
    clock,
    config,
    events,
    dispatched,
    changedAccounts,
    /** Stops the recording ingest actor (tests call it, or use `await using`). */
    [Symbol.asyncDispose]: () => running.stop(1000),
  };
}

/**
 * Sends API requests to `test`'s app as the trader `userId`, each with an access token of the
 * test clock's time (tests move the clock by days, far past an access token's life). A string
 * body goes as is, anything else as JSON.
 */
export function apiAs(
  test: ReturnType<typeof createTestApp>,
  userId: string,
  headers: Record<string, string> = {},
) {
  return async (method: string, path: string, body?: unknown): Promise<Response> => {
    const { token } = await accessTokenFor(test.deps.db, { id: userId, role: "trader" }, {
      secret: test.config.jwtSecret,
      now: test.clock.now(),
    });
    return await test.app.request(path, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
  };
}
