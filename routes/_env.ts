/** The types every route and middleware shares through the Hono context. */
import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import type { SignalAccepter } from "../db/signals.ts";
import type { WebhookKeyFinder } from "../db/webhook_keys.ts";
import type { Queue } from "../db/queue.ts";
import type { Clock } from "../lib/clock.ts";
import type { Logger } from "../lib/log.ts";
import type { RateLimiter } from "../lib/rate_limit.ts";
import type { Probe } from "../lib/health.ts";
import type { EventBus } from "../lib/events.ts";
import type { ActorRef } from "../actors/actor.ts";
import type { IngestCommand } from "../actors/ingest.ts";
import type { ScannerCommand } from "../actors/scanner.ts";
import type { HubCommand } from "../actors/hub.ts";
import type { NotifierCommand } from "../actors/notifier.ts";
import type { Role } from "../lib/jwt.ts";
import type { ExternalVerifier } from "../lib/oidc.ts";
import type { AppMetrics } from "./metrics.ts";
import type { Keyring } from "../lib/crypto.ts";

/** What the HTTP layer needs from the running process. */
export interface AppDeps {
  config: Config;
  log: Logger;
  db: Db;
  clock: Clock;
  /** Readiness probes by component name (database, kv, actors, …). */
  probes: Record<string, Probe>;
  /** Facts for `/health/detailed` beyond the probes (queue depths, actor states, …). */
  details?: () => Promise<Record<string, unknown>>;
  rateLimiter: RateLimiter;
  /** Per client address on `/api/v1/auth/*` (AUTH_RATE_LIMIT_PER_MINUTE). */
  authLimiter: RateLimiter;
  /** Per webhook key (WEBHOOK_RATE_LIMIT_PER_MINUTE). */
  webhookLimiter: RateLimiter;
  /** Looks webhook keys up, concurrent requests together; `createApp` makes one over `db` if absent. */
  webhookKeys?: WebhookKeyFinder;
  /** Accepts signals with group commit; `createApp` makes one over `db` if absent. */
  signals?: SignalAccepter;
  bus: EventBus;
  /** The circuit breaker state of a broker account. */
  breakerState(accountId: string): Promise<"closed" | "open" | "half_open">;
  /** Accepted signals are told to ingest, which routes them to their executor. */
  ingest: ActorRef<IngestCommand>;
  /** The WebSocket hub (`/api/v1/ws`); without it the route answers 503. */
  hub?: ActorRef<HubCommand>;
  /** Sends channel test messages; without it the test route answers 503. */
  notifier?: ActorRef<NotifierCommand>;
  queue?: Queue;
  /** The process's metrics (`/metrics`); the app makes its own when none is given. */
  metrics?: AppMetrics;
  /** Told of every stored 1h+ bar, to evaluate trendline alerts at once. */
  scanner?: ActorRef<ScannerCommand>;
  /** Verifies an external identity provider's tokens, when one is configured. */
  externalAuth?: ExternalVerifier;
  /** Epoch ms when the process started. */
  startedAt: number;
  /** Seals broker credentials (ENCRYPTION_KEY); the routes never open them. */
  keyring: Keyring;
  /**
   * Called after an account's settings or credentials changed, or it was deleted, once the change
   * is committed: its running executor stops gracefully and the next signal starts it afresh.
   */
  accountChanged?(accountId: string): Promise<void>;
}

/** The Hono environment: per-request variables set by the middleware. */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    requestId: string;
    /** performance.now() when the request arrived. */
    startedAt: number;
    /** The authenticated user, once a route has authenticated one. */
    userId?: string;
    /** The authenticated user's role (read from the database on every request). */
    role?: Role;
    /** The authenticated user's email. */
    email?: string;
    /** The session of the access token; absent for an external identity provider's token. */
    sessionId?: string;
    /** How the caller authenticated: a bearer token or the dashboard's session cookie. */
    authVia?: "bearer" | "cookie";
  };
}
