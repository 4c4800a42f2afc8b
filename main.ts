/**
 * Boot: config → database (migrated) → KV → durable queue → supervisor → HTTP. Shutdown runs the
 * same steps backwards: stop accepting requests and let in-flight ones finish, drain the actors'
 * mailboxes, close the queue, KV and database, exit 0 — all within SHUTDOWN_TIMEOUT_MS.
 */
import { type Config, ConfigError, environment, loadConfig } from "./config.ts";
import { type ActorRef, createActor, Supervisor } from "./actors/mod.ts";
import { type ExecutorDeps, RETRY_MESSAGE } from "./actors/executor.ts";
import { ExecutorRegistry } from "./actors/executors.ts";
import { ingestBehavior, type IngestCommand } from "./actors/ingest.ts";
import { scannerBehavior, type ScannerCommand } from "./actors/scanner.ts";
import { hubBehavior, type HubCommand, type HubOptions, type HubStats } from "./actors/hub.ts";
import {
  notifierBehavior,
  type NotifierCommand,
  type NotifierOptions,
  notifierQueueHandler,
  NOTIFY_RETRY_MESSAGE,
} from "./actors/notifier.ts";
import type { Broker } from "./brokers/broker.ts";
import { createAlpacaBroker } from "./brokers/alpaca.ts";
import { PaperBroker, PaperSettingsSchema } from "./brokers/paper.ts";
import { kvBreakerStore, storedBreakerState } from "./db/breaker_store.ts";
import { ExecutionBatches, type ExecutorAccount } from "./db/executions.ts";
import { configuredKeyring, type Keyring } from "./lib/crypto.ts";
import { openCredentials } from "./lib/credentials.ts";
import { EventBus } from "./lib/events.ts";
import { type Db, isDbUnavailable, openDb } from "./db/client.ts";
import { migrateUp, migrationStatus } from "./db/migrate.ts";
import type { Queue } from "./db/queue.ts";
import { createKvQueue } from "./db/queue_kv.ts";
import { kvPath } from "./db/paths.ts";
import { databaseOptions } from "./db/open.ts";
import { type Clock, systemClock } from "./lib/clock.ts";
import { createLogger, type Logger, type LogSink, serializeError, stdoutSink } from "./lib/log.ts";
import { createErrorReporter } from "./lib/sentry.ts";
import { bridgeEvents, forwardDispatch, listenForDispatches } from "./db/cluster.ts";
import { createPgQueue } from "./db/queue_pg.ts";
import { createAppLimiters } from "./lib/rate_limit.ts";
import { createExternalVerifier } from "./lib/oidc.ts";
import { eventLoopLag, type Registry } from "./lib/metrics.ts";
import { createAppMetrics } from "./routes/metrics.ts";
import { createApp } from "./routes/mod.ts";
import { SCAN_BACKOFF_SCHEDULE, SCAN_SCHEDULES, SCAN_TIMEFRAMES } from "./lib/schedule.ts";
import { hubAuthenticator } from "./routes/ws.ts";

/** A running trendedge. */
export interface Runtime {
  /** The URL the server listens on. */
  url: string;
  config: Config;
  db: Db;
  kv: Deno.Kv;
  queue: Queue;
  supervisor: Supervisor;
  bus: EventBus;
  registry: ExecutorRegistry;
  ingest: ActorRef<IngestCommand>;
  /** The WebSocket hub. */
  hub: ActorRef<HubCommand>;
  /** The trendline scanner (told by `Deno.cron`). */
  scanner: ActorRef<ScannerCommand>;
  /** Telegram / Discord notifications. */
  notifier: ActorRef<NotifierCommand>;
  /** The HTTP app (tests mount extra routes on it). */
  app: ReturnType<typeof createApp>;
  /** Stops everything in reverse boot order; resolves true when it finished within the deadline. */
  shutdown(reason: string): Promise<boolean>;
  /** Settles when the runtime has stopped; rejects if the supervisor gave up. */
  done: Promise<void>;
}

/** Options of {@linkcode start}. */
export interface StartOptions {
  log?: Logger;
  clock?: Clock;
  /** How long to wait for the database at boot before giving up. */
  databaseWaitMs?: number;
  /** Settings of the WebSocket hub (tests shorten its intervals). */
  hub?: HubOptions;
  /** Settings of the notifier (tests shorten its retry delays). */
  notifier?: NotifierOptions;
}

/** Boots the whole runtime from `config`. */
export async function start(config: Config, options: StartOptions = {}): Promise<Runtime> {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? createLogger("trendedge", { level: config.logLevel });
  const startedAt = clock.now();
  log.info("Starting trendedge", {
    version: config.version,
    environment: config.env,
    database_engine: config.database.url ? "postgres" : "pglite",
    data_dir: config.dataDir,
    rate_limits: config.upstash ? "shared" : "local",
  });

  const db = await openDatabase(config, log, clock, options.databaseWaitMs ?? 30_000);
  const cleanup: Array<() => Promise<unknown>> = [() => db.close()];
  try {
    await prepareSchema(db, config, log);

    // Deno Deploy has no writable file system and gives every deployment its own KV.
    if (!config.denoDeploy) await Deno.mkdir(config.dataDir, { recursive: true });
    const kv = await Deno.openKv(config.denoDeploy ? undefined : kvPath(config.dataDir));
    cleanup.unshift(() => Promise.resolve(kv.close()));

    // Several instances share retries through PostgreSQL; one keeps them in its own KV.
    const queue = config.cluster
      ? createPgQueue(db, { log: log.child("queue"), workerId: config.instanceId })
      : createKvQueue(kv, { log: log.child("queue") });

    const supervisor = new Supervisor({
      name: "root",
      intensity: 5,
      periodMs: 30_000,
      log: log.child("supervisor"),
      clock,
    });
    const bus = new EventBus(log.child("events"));
    // Seals with ENCRYPTION_KEY; during a rotation still opens what ENCRYPTION_KEY_PREVIOUS sealed.
    const keyring = configuredKeyring(config);
    const executorDeps: ExecutorDeps = {
      db,
      bus,
      queue,
      clock,
      breakers: kvBreakerStore(kv),
      createBroker: (account) => createBroker(account, { config, clock, log, keyring }),
      // Every executor's batch reads and writes, so that several accounts' go together.
      batches: new ExecutionBatches(db),
    };
    const registry = new ExecutorRegistry({
      deps: executorDeps,
      log,
      shutdownMs: config.shutdownTimeoutMs,
      lease: config.cluster ? { owner: config.instanceId } : undefined,
    });
    const forward = config.cluster
      ? (signal: { signalId: string; accountId: string }) =>
        forwardDispatch(db, config.instanceId, signal)
      : undefined;
    const ingest = createActor("ingest", ingestBehavior({ db, clock, registry, bus, forward }), {
      capacity: 100_000,
      log: log.child("ingest"),
      clock,
    });
    const externalAuth = config.auth.oidc ? createExternalVerifier(config.auth.oidc) : undefined;
    const hub = createActor(
      "hub",
      hubBehavior({
        bus,
        clock,
        authenticate: hubAuthenticator({ config, clock, db, externalAuth, log: log.child("hub") }),
      }, options.hub),
      { capacity: 100_000, log: log.child("hub"), clock },
    );
    const scanner = createActor(
      "scanner",
      scannerBehavior({ db, clock, bus, instanceId: config.instanceId }),
      { log: log.child("scanner"), clock },
    );
    const notifier = createActor(
      "notifier",
      notifierBehavior({
        db,
        cipher: keyring,
        queue,
        bus,
        clock,
        operator: config.notify.operator,
        instanceId: config.instanceId,
        send: {
          telegramApiUrl: config.notify.telegramApiUrl,
          discordApiUrl: config.notify.discordApiUrl,
        },
      }, options.notifier),
      { capacity: 100_000, log: log.child("notifier"), clock },
    );
    queue.handle(NOTIFY_RETRY_MESSAGE, notifierQueueHandler(notifier.ref));
    queue.handle(RETRY_MESSAGE, async (delivery) => {
      const { signalId, accountId, attempt } = delivery.payload as {
        signalId: string;
        accountId: string;
        attempt: number;
      };
      await ingest.ref.tell({ type: "dispatch", signalId, accountId, recovering: true, attempt });
    });
    await supervisor.start([
      {
        // Executors restart often during a database outage; their own supervisor keeps trying
        // with backoff instead of taking the whole process down.
        id: "executors",
        start: async () => {
          const executors = new Supervisor({
            name: "executors",
            intensity: 1_000,
            periodMs: 60_000,
            backoff: { initialMs: 200, maxMs: 5_000 },
            log: log.child("executors"),
            clock,
          });
          registry.attach(executors);
          await executors.start([]);
          return executors;
        },
        restart: "permanent",
        shutdownMs: config.shutdownTimeoutMs,
      },
      {
        id: "ingest",
        start: () => ingest.run(),
        restart: "permanent",
        shutdownMs: config.shutdownTimeoutMs,
      },
      {
        id: "hub",
        start: () => hub.run(),
        restart: "permanent",
        shutdownMs: config.shutdownTimeoutMs,
      },
      {
        id: "scanner",
        start: () => scanner.run(),
        restart: "permanent",
        shutdownMs: config.shutdownTimeoutMs,
      },
      {
        id: "notifier",
        start: () => notifier.run(),
        restart: "permanent",
        shutdownMs: config.shutdownTimeoutMs,
      },
    ]);
    cleanup.unshift(() => supervisor.stop(config.shutdownTimeoutMs));
    if (config.cluster) {
      // Runs after the executors stopped (cleanup runs front to back): a survivor may take
      // their accounts over at once instead of waiting for the leases to lapse.
      cleanup.splice(1, 0, () => registry.releaseLeases());
      const stopBridge = await bridgeEvents(db, bus, {
        instanceId: config.instanceId,
        log: log.child("cluster"),
      });
      const stopDispatches = await listenForDispatches(db, config.instanceId, (signal) => {
        ingest.ref.tell({ type: "dispatch", ...signal, forwarded: true }).catch(() => {});
      });
      // Stop taking dispatches before the executors drain; keep sharing events until they have.
      cleanup.unshift(stopDispatches);
      cleanup.splice(3, 0, stopBridge);
      log.info("Cluster mode", { instance_id: config.instanceId });
    }

    const metrics = createAppMetrics(bus);
    const lag = eventLoopLag();
    cleanup.push(() => Promise.resolve(lag.stop()));
    registerRuntimeGauges(metrics.registry, { config, queue, registry, ingest, hub, lag });
    const app = createApp({
      metrics,
      config,
      log: log.child("http"),
      db,
      clock,
      startedAt,
      queue,
      ...createAppLimiters(
        {
          apiPerMinute: config.rateLimitPerMinute,
          authPerMinute: config.auth.ratePerMinute,
          webhookPerMinute: config.webhook.ratePerMinute,
        },
        clock,
        { shared: config.upstash && { upstash: config.upstash, log: log.child("rate_limit") } },
      ),
      bus,
      ingest: ingest.ref,
      scanner: scanner.ref,
      hub: hub.ref,
      notifier: notifier.ref,
      externalAuth,
      breakerState: (accountId) => storedBreakerState(executorDeps.breakers, accountId, clock),
      keyring,
      accountChanged: (accountId) => registry.reload(accountId),
      probes: {
        database: async () => ({ engine: db.engine, ping_ms: round(await db.ping(2_000)) }),
        kv: async () => {
          await kv.get(["health"]);
          return {};
        },
        actors: () => {
          if (!supervisor.running) throw new Error("the supervisor has stopped");
          const children = supervisor.status();
          const down = children.filter((c) => c.state !== "running").map((c) => c.id);
          if (down.length > 0) throw new Error(`not running: ${down.join(", ")}`);
          return Promise.resolve({ children: children.length });
        },
        // An open breaker stops one account, not the instance: webhooks are still taken (and
        // that account's signals refused with the reason), so readiness reports it and stays up.
        // Failing here would make a load balancer (Fly's checks) drop every trader's traffic.
        brokers: async () => {
          const statuses = await registry.statuses();
          const open = statuses.filter((s) => s.breaker !== "closed").map((s) => s.alias);
          return { executors: statuses.length, breakers_not_closed: open };
        },
      },
      details: async () => ({
        actors: supervisor.status(),
        executors: await registry.statuses(),
        mailboxes: {
          ingest: ingest.mailboxSize,
          hub: hub.mailboxSize,
          scanner: scanner.mailboxSize,
          notifier: notifier.mailboxSize,
          ...registry.mailboxes(),
        },
        queue: await queue.depth().catch((e) => ({ error: String(e) })),
      }),
    });

    // Stop taking queued work before the actors drain (cleanup runs front to back).
    cleanup.unshift(() => queue.close(config.shutdownTimeoutMs));

    const { promise: listening, resolve: onListen } = Promise.withResolvers<Deno.NetAddr>();
    const server = Deno.serve({
      hostname: config.host,
      port: config.port,
      onListen: onListen,
    }, app.fetch);
    const address = await listening;
    const host = address.hostname === "0.0.0.0" ? "localhost" : address.hostname;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
    log.info("Listening", { url, public_url: config.publicUrl ?? null });

    const { promise: done, resolve: resolveDone, reject: rejectDone } = Promise.withResolvers<
      void
    >();
    let stopping: Promise<boolean> | undefined;

    const shutdown = (reason: string): Promise<boolean> => {
      stopping ??= (async () => {
        const deadline = clock.now() + config.shutdownTimeoutMs;
        log.info("Shutting down", { reason, timeout_ms: config.shutdownTimeoutMs });
        let clean = await withDeadline(server.shutdown(), deadline - clock.now());
        if (!clean) log.error("In-flight requests did not finish before the deadline");
        for (const step of cleanup) {
          try {
            await step();
          } catch (error) {
            clean = false;
            log.error("Shutdown step failed", { error: serializeError(error) });
          }
        }
        log.info("Stopped", { clean, ms: clock.now() - (deadline - config.shutdownTimeoutMs) });
        resolveDone();
        return clean;
      })();
      return stopping;
    };

    supervisor.done.catch(async (error) => {
      log.critical("Supervisor gave up; stopping the process", { error: serializeError(error) });
      await shutdown("supervisor gave up");
      rejectDone(error);
    });

    queue.start();
    return {
      url,
      config,
      db,
      kv,
      queue,
      supervisor,
      bus,
      registry,
      ingest: ingest.ref,
      hub: hub.ref,
      scanner: scanner.ref,
      notifier: notifier.ref,
      app,
      shutdown,
      done,
    };
  } catch (error) {
    for (const step of cleanup) await step().catch(() => {});
    throw error;
  }
}

/** Builds the broker client of an account, decrypting its credentials only now. */
async function createBroker(
  account: ExecutorAccount,
  ctx: { config: Config; clock: Clock; log: Logger; keyring: Keyring },
): Promise<Broker> {
  if (account.broker === "paper") {
    const settings = PaperSettingsSchema.safeParse(account.paper ?? {});
    if (!settings.success) {
      ctx.log.error("Paper settings are invalid; using the defaults", { account_id: account.id });
    }
    return new PaperBroker({
      settings: settings.success ? settings.data : PaperSettingsSchema.parse({}),
      clock: ctx.clock,
    });
  }
  if (!account.credentials) {
    throw new Error(`Cannot trade through "${account.alias}": it has no Alpaca credentials`);
  }
  const { keyId, secretKey } = await openCredentials(ctx.keyring, account.credentials);
  return createAlpacaBroker({
    keyId,
    secretKey,
    paper: !account.live,
    baseUrl: ctx.config.alpacaBaseUrl,
    log: ctx.log.child("alpaca", { account_id: account.id }),
  });
}

/** Opens the database, waiting for a PostgreSQL server that is still starting. */
async function openDatabase(
  config: Config,
  log: Logger,
  clock: Clock,
  waitMs: number,
): Promise<Db> {
  const db = await openDb(databaseOptions(config));
  const deadline = clock.now() + waitMs;
  for (let attempt = 1;; attempt++) {
    try {
      await db.ping(5_000);
      return db;
    } catch (error) {
      if (!isDbUnavailable(error) || clock.now() >= deadline) {
        await db.close().catch(() => {});
        throw new Error(`Cannot start: the database does not answer: ${(error as Error).message}`, {
          cause: error,
        });
      }
      log.warning("Waiting for the database", { attempt, error: (error as Error).message });
      await clock.sleep(Math.min(1000 * attempt, 5000));
    }
  }
}

/** Migrates in development; elsewhere refuses to run on a schema older than the code. */
async function prepareSchema(db: Db, config: Config, log: Logger) {
  if (config.migrateOnStart) {
    const applied = await migrateUp(db, {
      onStep: (s) =>
        log.info("Migration applied", { version: s.version, name: s.name, ms: Math.round(s.ms) }),
    });
    if (applied.length === 0) log.debug("Schema is up to date");
    return;
  }
  const pending = (await migrationStatus(db)).filter((m) => m.appliedAt === null);
  if (pending.length > 0) {
    throw new Error(
      `Cannot start: ${pending.length} migration(s) pending (${
        pending.map((m) => m.version).join(", ")
      }); run "deno task migrate up" first`,
    );
  }
}

function withDeadline(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), Math.max(0, ms))),
  ]).finally(() => clearTimeout(timer));
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Runs trendedge as a process: exits 0 after a clean shutdown on SIGTERM or SIGINT. */
async function main() {
  let config: Config;
  try {
    config = loadConfig(environment());
  } catch (error) {
    const log = createLogger("trendedge");
    if (error instanceof ConfigError) log.critical(error.message, { problems: error.problems });
    else log.critical("Cannot start", { error: serializeError(error) });
    Deno.exit(78); // EX_CONFIG
  }
  const reporter = config.sentryDsn
    ? createErrorReporter({
      dsn: config.sentryDsn,
      environment: config.env,
      release: config.version,
    })
    : undefined;
  const base: LogSink = reporter
    ? (line) => {
      stdoutSink(line);
      reporter.line(line);
    }
    : stdoutSink;
  const log = createLogger("trendedge", {
    level: config.logLevel,
    // Error and critical lines also go to the notifier, which alerts the operator on a spike.
    sink: (line) => {
      base(line);
      if (runningNotifier && ERROR_LINE.test(line)) {
        runningNotifier.tell({ type: "log_error" }).catch(() => {});
      }
    },
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log.critical("Unhandled promise rejection", { error: serializeError(event.reason) });
  });
  let runtime: Runtime;
  try {
    runtime = await start(config, { log });
    runningScanner = runtime.scanner;
    runningNotifier = runtime.notifier;
  } catch (error) {
    log.critical((error as Error).message ?? "Cannot start", { error: serializeError(error) });
    await reporter?.close(2_000);
    Deno.exit(1);
  }
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    try {
      Deno.addSignalListener(signal, async () => {
        const clean = await runtime.shutdown(signal);
        await reporter?.close(2_000);
        Deno.exit(clean ? 0 : 1);
      });
    } catch (error) {
      // Deno Deploy delivers no signals: the platform stops isolates itself.
      log.debug("Cannot listen for a signal", { signal, error: (error as Error).message });
    }
  }
  try {
    await runtime.done;
  } catch {
    Deno.exit(1);
  }
}

/** The scanner of the running process, for the cron callbacks (set once the runtime started). */
let runningScanner: ActorRef<ScannerCommand> | null = null;
/** The notifier of the running process, for the daily summary cron and the error counting sink. */
let runningNotifier: ActorRef<NotifierCommand> | null = null;
/** The logger writes `"level":"ERROR"` / `"CRITICAL"` right after the timestamp. */
const ERROR_LINE = /^\{"timestamp":"[^"]*","level":"(?:ERROR|CRITICAL)"/;

if (import.meta.main) {
  // Registered at top level, as Deno.cron requires; a callback only tells the scanner, which
  // claims the tick's lease so that one instance scans it. Before the runtime has started (or
  // while it stops) a tick is dropped; the next one scans the same bars.
  for (const timeframe of SCAN_TIMEFRAMES) {
    Deno.cron(
      `scan ${timeframe}`,
      SCAN_SCHEDULES[timeframe],
      { backoffSchedule: [...SCAN_BACKOFF_SCHEDULE] },
      async () => {
        const at = new Date(Math.floor(systemClock.now() / 60_000) * 60_000);
        await runningScanner?.tell({ type: "tick", timeframe, at });
      },
    );
  }
  // The notifier claims the day's tick, so one instance sends the summaries.
  Deno.cron("daily-summary", "0 22 * * *", { backoffSchedule: [1000, 5000, 10000] }, async () => {
    await runningNotifier?.tell({ type: "daily_summary", day: new Date(systemClock.now()) });
  });
  await main();
}

/** The gauges read at each scrape of `/metrics`: live state of the queue, actors and process. */
function registerRuntimeGauges(
  metrics: Registry,
  source: {
    config: Config;
    queue: Queue;
    registry: ExecutorRegistry;
    ingest: { mailboxSize: number };
    hub: { mailboxSize: number; ref: ActorRef<HubCommand> };
    lag: { lagMs(): number };
  },
): void {
  const { config, queue, registry, ingest, hub, lag } = source;
  metrics.gauge("trendedge_build_info", "Version and environment of this process", () => [
    { labels: { version: config.version, environment: config.env }, value: 1 },
  ]);
  metrics.gauge("trendedge_queue_messages", "Durable queue messages by state", async () => {
    const depth = await queue.depth();
    return [
      { labels: { state: "pending" }, value: depth.pending },
      { labels: { state: "dead_letter" }, value: depth.deadLetters },
    ];
  });
  metrics.gauge(
    "trendedge_breaker_state",
    "Circuit breaker of each running executor: 1 for its current state",
    async () =>
      (await registry.statuses()).flatMap((s) =>
        ["closed", "half_open", "open"].map((state) => ({
          labels: { account_id: s.accountId, alias: s.alias, broker: s.broker, state },
          value: s.breaker === state ? 1 : 0,
        }))
      ),
  );
  metrics.gauge(
    "trendedge_executor_open_orders",
    "Orders each running executor watches",
    async () =>
      (await registry.statuses()).map((s) => ({
        labels: { account_id: s.accountId, alias: s.alias, broker: s.broker },
        value: s.openOrders,
      })),
  );
  metrics.gauge("trendedge_mailbox_messages", "Messages waiting in actor mailboxes", () => [
    { labels: { actor: "ingest" }, value: ingest.mailboxSize },
    { labels: { actor: "hub" }, value: hub.mailboxSize },
    ...Object.entries(registry.mailboxes()).map(([accountId, size]) => ({
      labels: { actor: "executor", account_id: accountId },
      value: size,
    })),
  ]);
  metrics.gauge("trendedge_websocket_connections", "Open dashboard WebSockets", async () => {
    const stats = await hub.ref.ask<HubStats>((reply) => ({ type: "stats", reply }), {
      timeoutMs: 1_000,
    });
    return [{ value: stats.connections }];
  });
  metrics.gauge(
    "trendedge_event_loop_lag_seconds",
    "How late a 500 ms timer fired, last sample",
    () => [{ value: lag.lagMs() / 1000 }],
  );
  metrics.gauge("trendedge_process_memory_bytes", "Memory of this process", () => {
    const m = Deno.memoryUsage();
    return [
      { labels: { kind: "rss" }, value: m.rss },
      { labels: { kind: "heap_used" }, value: m.heapUsed },
      { labels: { kind: "heap_total" }, value: m.heapTotal },
      { labels: { kind: "external" }, value: m.external },
    ];
  });
}
