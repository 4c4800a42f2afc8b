/**
 * `deno task seed [--email E] [--password P] [--days N] [--seed N] [--reset]` — fills a
 * development database with a demo trader and a few weeks of believable history, so every
 * dashboard page has something to show: signals (some rejected, with the real reasons), orders,
 * fills, positions and trades on the `paper` account, bars, a watchlist and trendlines.
 *
 * Everything goes through the code the service runs: users, keys and accounts through their db
 * functions; each alert is validated, mapped and accepted like the webhook does, then executed
 * by the real executor actor (paper broker, risk checks) on a clock set to the alert's time;
 * trendlines are found and evaluated by the real scanner actor. Refuses production (exit 78).
 * When the demo user exists it changes nothing, unless `--reset`, which deletes that user (and
 * with it, by cascade, everything of theirs but the append-only journal and audit log) and
 * seeds again — and only a user this task created.
 */
import { type Actor, createActor } from "../actors/actor.ts";
import { ConfigError, environment, loadConfig } from "../config.ts";
import { executorBehavior, type ExecutorCommand } from "../actors/executor.ts";
import { scannerBehavior, type ScannerCommand, type ScanSummary } from "../actors/scanner.ts";
import { PaperBroker, PaperSettingsSchema } from "../brokers/paper.ts";
import { updateAccount } from "../db/accounts.ts";
import { audit, OPERATOR } from "../db/audit.ts";
import { type Bar, upsertBars } from "../db/bars.ts";
import { memoryBreakerStore } from "../db/breaker_store.ts";
import type { Db } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { openOperatorDb } from "../db/open.ts";
import type { Queue } from "../db/queue.ts";
import { acceptSignal, rejectSignal, type SignalEnvelope } from "../db/signals.ts";
import { addWatch, writeScanSettings } from "../db/trendlines.ts";
import {
  createUser,
  findUserByEmail,
  InvalidEmailError,
  PAPER_ACCOUNT_ALIAS,
} from "../db/users.ts";
import { createWebhookKey } from "../db/webhook_keys.ts";
import { fail, parseFlags, print, printError } from "../lib/cli.ts";
import { type Clock, systemClock } from "../lib/clock.ts";
import {
  createPrng,
  DEMO_INSTRUMENTS,
  demoBars,
  demoPlan,
  type PlannedAlert,
} from "../lib/demo_market.ts";
import { EventBus } from "../lib/events.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { PasswordPolicyError } from "../lib/password.ts";
import type { ScanTimeframe } from "../lib/schedule.ts";
import { dedupKey, validateSignal } from "../lib/signal.ts";
import { mapSymbol } from "../lib/symbols.ts";
import { generateWebhookKey } from "../lib/webhook_key.ts";

/** The demo trader's email unless `--email` says otherwise. */
export const DEMO_EMAIL = "demo@trendedge.local";
/** The demo trader's password unless `--password` says otherwise. */
export const DEMO_PASSWORD = "demo-password-1234";
/** Days of trading history by default. */
export const DEFAULT_DAYS = 21;
/** The PRNG seed by default. */
export const DEFAULT_SEED = 1;

const DAY_MS = 86_400_000;
const DEDUP_WINDOW_MS = 60_000;
const SCAN_TIMEFRAMES: readonly ScanTimeframe[] = ["1d", "1h"];
/** Daily bars before the hourly history, so daily trendlines have a year to form in. */
const DAILY_HISTORY_DAYS = 300;
/** The last bars are stored after a first scan, so the scanner raises alerts on them. */
const LATE_BARS_MS = 3 * DAY_MS;
/** The demo account's risk limits: what makes some of its signals rejected for real. */
const DEMO_RISK = {
  max_order_quantity: 500,
  allowed_symbols: DEMO_INSTRUMENTS.map((i) => i.symbol.split("/")[0]!),
  max_signal_age_seconds: 30,
};
const DEMO_PAPER = { slippage_bps: 1, fee_bps: 0.5 };
/** ATR-based tolerance finds lines on any price scale (BTC and SPY alike). */
const DEMO_SCAN_SETTINGS = { toleranceMode: "atr", tolerance: 0.3, pivotWindow: 4 } as const;

/** Options of {@linkcode seedDemo}. */
export interface SeedOptions {
  email?: string;
  password?: string;
  /** Days of signals and orders (default 21). */
  days?: number;
  /** Seed of the PRNG (default 1): the same seed gives the same market and plan. */
  seed?: number;
  /** Delete the demo user this task made before, and seed again. */
  reset?: boolean;
  /** Epoch ms the history ends at (default now). */
  now?: number;
  /** Where the actors log (default: warnings and worse to stderr). */
  log?: Logger;
}

/** What was written, for the summary. */
export interface SeedCounts {
  signals: number;
  rejected: number;
  duplicates: number;
  orders: number;
  fills: number;
  openPositions: number;
  trades: number;
  closedTrades: number;
  bars: number;
  watchlist: number;
  trendlines: number;
  trendlineEvents: number;
}

/** The outcome of {@linkcode seedDemo}. */
export type SeedResult =
  | { status: "exists"; userId: string; email: string }
  | {
    status: "seeded";
    userId: string;
    email: string;
    role: string;
    password: string;
    /** Shown once: only its hash is stored. */
    webhookKey: string;
    reset: boolean;
    counts: SeedCounts;
  };

/** The seed cannot run as asked (a `--reset` of a user this task did not make). */
export class SeedRefusedError extends Error {
  override name = "SeedRefusedError";
}

/**
 * Seeds the demo trader into `db` (migrated already). Idempotent: when the user exists it
 * returns `exists` and writes nothing, unless `reset`.
 *
 * @example
 * await migrateUp(db);
 * const result = await seedDemo(db, { days: 7, seed: 42 });
 */
export async function seedDemo(db: Db, options: SeedOptions = {}): Promise<SeedResult> {
  const email = options.email ?? DEMO_EMAIL;
  const password = options.password ?? DEMO_PASSWORD;
  const days = options.days ?? DEFAULT_DAYS;
  const seed = options.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(days) || days < 1 || days > 365) {
    throw new RangeError(`Cannot seed: "days" must be a whole number from 1 to 365, got ${days}`);
  }
  const now = options.now ?? Date.now();
  const log = options.log ?? createLogger("seed", { level: "warning", sink: printError });

  const existing = await findUserByEmail(db, email);
  if (existing && !options.reset) {
    return { status: "exists", userId: existing.id, email: existing.email };
  }
  if (existing) await deleteDemoUser(db, existing.id, existing.email);

  const random = createPrng(seed);
  const start = now - days * DAY_MS;
  const user = await createUser(db, { email, password, actor: OPERATOR }, { now: start });
  // Backdated like the rest of the history, so the user does not look younger than their trades.
  await db.query(`UPDATE users SET created_at = $2, updated_at = $2 WHERE id = $1`, [
    user.id,
    new Date(start),
  ]);
  await db.query(`UPDATE broker_accounts SET created_at = $2 WHERE id = $1`, [
    user.paperAccountId,
    new Date(start),
  ]);
  const generated = await generateWebhookKey();
  const key = await createWebhookKey(db, {
    userId: user.id,
    name: "demo",
    key: { id: uuidv7(start), prefix: generated.prefix, hash: generated.hash },
    expiresAt: new Date(now + 180 * DAY_MS),
    now: new Date(start),
    actor: OPERATOR,
    maxActive: Infinity,
  });
  await updateAccount(db, user.id, PAPER_ACCOUNT_ALIAS, {
    risk: DEMO_RISK,
    paper: DEMO_PAPER,
  }, OPERATOR);

  await writeScanSettings(db, user.id, DEMO_SCAN_SETTINGS);

  // The market: bars for every instrument, all but the last days stored before the first scan.
  const markets = DEMO_INSTRUMENTS.map((instrument) => ({
    instrument,
    bars: demoBars(instrument, {
      end: now,
      hourlyDays: days + 7,
      dailyDays: DAILY_HISTORY_DAYS,
      random,
    }),
  }));
  const cut = now - LATE_BARS_MS;
  const store = async (symbol: string, timeframe: "1d" | "1h", bars: Bar[]) => {
    if (bars.length > 0) {
      await upsertBars(db, { userId: user.id, symbol, timeframe, source: "csv" }, bars);
    }
  };
  for (const { instrument, bars } of markets) {
    await store(instrument.symbol, "1d", bars.daily.filter((b) => b.ts.getTime() < cut));
    await store(instrument.symbol, "1h", bars.hourly.filter((b) => b.ts.getTime() < cut));
    for (const timeframe of SCAN_TIMEFRAMES) {
      await addWatch(db, { userId: user.id, symbol: instrument.symbol, timeframe });
    }
  }

  // The trading: the plan of every instrument, plus the alerts a trader gets wrong.
  const alerts = markets.flatMap(({ instrument, bars }) =>
    demoPlan(instrument, bars.hourly, { from: start, random })
  ).sort((a, b) => a.at - b.at);
  const clock = new SeedClock(start);
  const ctx = { db, userId: user.id, accountId: user.paperAccountId, keyId: key.id, clock };
  const executor = startExecutor(ctx, log);
  const mistakes = mistakesOf(alerts, random);
  let duplicates = 0;
  try {
    let n = 0;
    for (const alert of alerts) {
      n++;
      const payload = {
        ticker: alert.instrument.ticker,
        action: alert.action,
        ...(alert.quantity === undefined ? {} : { quantity: alert.quantity }),
        price: alert.price,
        id: `${alert.strategy}-${n}`,
        strategy: { name: alert.strategy, timeframe: "1h" },
        comment: alert.comment,
      };
      await send(ctx, executor.actor, alert.at, payload);
      const mistake = mistakes.get(alert);
      if (mistake === "resend") {
        // TradingView firing twice: the second copy is answered as a duplicate and not stored.
        const again = await send(ctx, executor.actor, alert.at + 900, payload);
        if (again === "duplicate") duplicates++;
      } else if (mistake) {
        await send(ctx, executor.actor, alert.at + 45_000 + Math.floor(random() * 60_000), mistake);
      }
    }
  } finally {
    await executor.stop();
  }

  // The scanner: once before the last bars arrive, once after (alerts on the new bars).
  const scanner = startScanner(db, clock, log);
  try {
    clock.set(cut);
    for (const timeframe of SCAN_TIMEFRAMES) await scan(scanner.actor, timeframe, user.id);
    for (const { instrument, bars } of markets) {
      await store(instrument.symbol, "1d", bars.daily.filter((b) => b.ts.getTime() >= cut));
      await store(instrument.symbol, "1h", bars.hourly.filter((b) => b.ts.getTime() >= cut));
    }
    clock.set(now);
    for (const timeframe of SCAN_TIMEFRAMES) await scan(scanner.actor, timeframe, user.id);
  } finally {
    await scanner.stop();
  }

  const counts = await countsOf(db, user.id, duplicates);
  await audit(db, {
    ...OPERATOR,
    action: "demo.seeded",
    targetType: "user",
    targetId: user.id,
    data: { email: user.email, days, seed, reset: existing !== null, ...counts },
  });
  return {
    status: "seeded",
    userId: user.id,
    email: user.email,
    role: user.role,
    password,
    webhookKey: generated.key,
    reset: existing !== null,
    counts,
  };
}

/**
 * Deletes a user this task made, in one transaction; every table of theirs cascades, except
 * the journal and the audit log, which are append-only and keep their history.
 */
async function deleteDemoUser(db: Db, userId: string, email: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [seeded] = await tx.query<{ yes: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM audit_log WHERE action = 'demo.seeded' AND target_id = $1)
         AS yes`,
      [userId],
    );
    if (!seeded!.yes) {
      throw new SeedRefusedError(
        `Cannot reset "${email}": this user was not created by "deno task seed", so it is not deleted`,
      );
    }
    // Not referenced by a foreign key: it would hold the old dedup keys for nothing.
    await tx.query(`DELETE FROM signal_dedup WHERE user_id = $1`, [userId]);
    await tx.query(`DELETE FROM users WHERE id = $1`, [userId]);
    await audit(tx, {
      ...OPERATOR,
      action: "demo.reset",
      targetType: "user",
      targetId: userId,
      data: { email },
    });
  });
}

/** A clock the seed sets to each alert's moment; every reading moves it on by a millisecond. */
class SeedClock implements Clock {
  #now: number;
  constructor(start: number) {
    this.#now = start;
  }
  set(ms: number): void {
    this.#now = ms;
  }
  now(): number {
    return this.#now++;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return systemClock.sleep(ms, signal);
  }
}

interface SeedContext {
  db: Db;
  userId: string;
  accountId: string;
  keyId: string;
  clock: SeedClock;
}

/** The paper account's real executor, over a queue that refuses retries (none are expected). */
function startExecutor(ctx: SeedContext, log: Logger) {
  const refuse = () => Promise.reject(new Error("Cannot retry while seeding: no queue"));
  const queue: Queue = {
    handle() {},
    start() {},
    enqueue: refuse,
    deadLetters: () => Promise.resolve([]),
    replay: () => Promise.resolve(false),
    depth: () => Promise.resolve({ pending: 0, deadLetters: 0 }),
    close: () => Promise.resolve(),
  };
  const actor = createActor(
    `executor:${ctx.accountId}`,
    executorBehavior(ctx.accountId, {
      db: ctx.db,
      bus: new EventBus(log),
      queue,
      clock: ctx.clock,
      breakers: memoryBreakerStore(),
      createBroker: (account) =>
        Promise.resolve(
          new PaperBroker({
            settings: PaperSettingsSchema.parse(account.paper ?? {}),
            clock: ctx.clock,
          }),
        ),
    }),
    { log, clock: ctx.clock },
  );
  return running(actor);
}

function startScanner(db: Db, clock: Clock, log: Logger) {
  const actor = createActor(
    "scanner",
    scannerBehavior({ db, clock, bus: new EventBus(log), instanceId: "seed" }),
    { log, clock },
  );
  return running(actor);
}

function running<T>(actor: Actor<T>) {
  const child = actor.run();
  let crash: unknown;
  child.done.catch((error) => {
    crash = error;
  });
  return {
    actor,
    async stop() {
      await child.stop(5_000);
      if (crash !== undefined) throw new Error("Cannot seed: an actor crashed", { cause: crash });
    },
  };
}

function scan(actor: Actor<ScannerCommand>, timeframe: ScanTimeframe, userId: string) {
  return actor.ref.ask<ScanSummary>(
    (reply) => ({ type: "scan", timeframe, userId, reply }),
    { timeoutMs: 120_000 },
  );
}

/**
 * Sends one alert the way the webhook takes it (validate, map, accept; refused alerts are kept
 * as rejected signals) and lets the executor run it, at `at` on the seed's clock.
 */
async function send(
  ctx: SeedContext,
  executor: Actor<ExecutorCommand>,
  at: number,
  payload: Record<string, unknown>,
): Promise<"accepted" | "duplicate" | "refused"> {
  const receivedAt = new Date(at);
  const envelope: SignalEnvelope = {
    id: uuidv7(at),
    userId: ctx.userId,
    keyId: ctx.keyId,
    accountId: ctx.accountId,
    source: "tradingview",
    rawBody: JSON.stringify({ key: "whk_…", ...payload }),
    receivedAt,
  };
  const validation = validateSignal(payload);
  if (!validation.ok) {
    await rejectSignal(
      ctx.db,
      envelope,
      null,
      "Cannot accept the alert: invalid fields",
      validation.problems,
    );
    return "refused";
  }
  const signal = validation.signal;
  const symbol = mapSymbol(signal.ticker, { broker: "paper", now: receivedAt }).symbol;
  const result = await acceptSignal(ctx.db, envelope, signal, {
    dedupKey: await dedupKey(signal),
    windowMs: DEDUP_WINDOW_MS,
    symbol,
  });
  if (result.duplicate) return "duplicate";
  // Dispatch takes a few milliseconds after the commit, as through the ingest actor.
  ctx.clock.set(at + 2 + (at % 9));
  await executor.ref.tell({ type: "execute", signalId: result.signalId, recovering: false });
  // Any message but an execute runs the pending batch first, so this answer means it is done.
  await executor.ref.ask((reply) => ({ type: "status", reply }), { timeoutMs: 30_000 });
  return "accepted";
}

/**
 * The alerts that go wrong, keyed by the planned alert they follow: a resend (duplicate), an
 * order over the risk limit, a symbol the account does not allow, and two broken templates.
 */
function mistakesOf(
  alerts: readonly PlannedAlert[],
  random: () => number,
): Map<PlannedAlert, Record<string, unknown> | "resend"> {
  const mistakes = new Map<PlannedAlert, Record<string, unknown> | "resend">();
  const pick = () => alerts[Math.floor(random() * alerts.length)];
  const entries = alerts.filter((a) => a.action !== "close");
  const over = entries.find((a) => !a.instrument.fractional) ?? entries[0];
  const list: Array<[PlannedAlert | undefined, Record<string, unknown> | "resend"]> = [
    [pick(), "resend"],
    [pick(), "resend"],
    [over, {
      ticker: over?.instrument.ticker ?? "NASDAQ:AAPL",
      action: "buy",
      quantity: 1_500,
      price: over?.price ?? "100",
      comment: "fat finger: 1500 instead of 15",
    }],
    [pick(), {
      ticker: "NASDAQ:TSLA",
      action: "buy",
      quantity: 10,
      price: "248.50",
      comment: "alert left on an old chart",
    }],
    [pick(), { ticker: "{{ticker}}", action: "buy", quantity: 10, price: "{{close}}" }],
    [pick(), { ticker: "NASDAQ:MSFT", action: "buy", qty: 10 }],
  ];
  for (const [alert, mistake] of list) {
    if (!alert) continue;
    // Each mistake follows its own alert: on a collision, the next free one.
    let i = alerts.indexOf(alert);
    for (let tries = 0; tries < alerts.length && mistakes.has(alerts[i]!); tries++) {
      i = (i + 1) % alerts.length;
    }
    if (!mistakes.has(alerts[i]!)) mistakes.set(alerts[i]!, mistake);
  }
  return mistakes;
}

async function countsOf(db: Db, userId: string, duplicates: number): Promise<SeedCounts> {
  const [row] = await db.query<Omit<SeedCounts, "duplicates">>(
    `SELECT
       (SELECT count(*)::int FROM signals WHERE user_id = $1) AS signals,
       (SELECT count(*)::int FROM signals WHERE user_id = $1 AND status = 'rejected') AS rejected,
       (SELECT count(*)::int FROM orders WHERE user_id = $1) AS orders,
       (SELECT count(*)::int FROM fills WHERE user_id = $1) AS fills,
       (SELECT count(*)::int FROM positions WHERE user_id = $1 AND quantity <> 0) AS "openPositions",
       (SELECT count(*)::int FROM trades WHERE user_id = $1) AS trades,
       (SELECT count(*)::int FROM trades WHERE user_id = $1 AND status = 'closed') AS "closedTrades",
       (SELECT count(*)::int FROM bars WHERE user_id = $1) AS bars,
       (SELECT count(*)::int FROM watchlists WHERE user_id = $1) AS watchlist,
       (SELECT count(*)::int FROM trendlines WHERE user_id = $1) AS trendlines,
       (SELECT count(*)::int FROM trendline_events WHERE user_id = $1) AS "trendlineEvents"`,
    [userId],
  );
  return { ...row!, duplicates };
}

const USAGE =
  "Usage: deno task seed [--email <email>] [--password <password>] [--days <1-365, default 21>] " +
  "[--seed <n, default 1>] [--reset]";

async function main(args: string[]) {
  const values = parseFlags(args, {
    email: { default: DEMO_EMAIL },
    password: { default: DEMO_PASSWORD },
    days: { default: String(DEFAULT_DAYS) },
    seed: { default: String(DEFAULT_SEED) },
    reset: { boolean: true },
  }, USAGE);
  if (!/^[1-9]\d*$/.test(values.days) || Number(values.days) > 365) {
    fail(
      `Cannot seed: "--days" must be a whole number from 1 to 365, got "${values.days}"\n${USAGE}`,
      64,
    );
  }
  if (!/^\d+$/.test(values.seed) || Number(values.seed) > 0xffffffff) {
    fail(
      `Cannot seed: "--seed" must be a whole number from 0 to 4294967295, got "${values.seed}"\n${USAGE}`,
      64,
    );
  }

  // Refused before the database is opened, so production is not even touched.
  let env: string;
  try {
    env = loadConfig(environment()).env;
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 78);
    throw error;
  }
  if (env === "production") {
    fail(
      'Cannot seed: APP_ENV is "production"; demo data is for development and screenshots only',
      78,
    );
  }

  const { db } = await openOperatorDb();
  let outcome: { result?: SeedResult; error?: string; code?: number };
  try {
    await migrateUp(db);
    outcome = {
      result: await seedDemo(db, {
        email: values.email,
        password: values.password,
        days: Number(values.days),
        seed: Number(values.seed),
        reset: values.reset,
      }),
    };
  } catch (error) {
    if (error instanceof InvalidEmailError || error instanceof PasswordPolicyError) {
      outcome = { error: error.message, code: 65 };
    } else if (error instanceof SeedRefusedError) outcome = { error: error.message, code: 1 };
    else outcome = { error: `Cannot seed: ${(error as Error).message}`, code: 1 };
  } finally {
    await db.close();
  }
  if (!outcome.result) fail(outcome.error!, outcome.code);
  const { result } = outcome;
  if (result.status === "exists") {
    print(`The demo user ${result.email} exists already (${result.userId}); nothing was changed.`);
    print("Run with --reset to delete it and seed again.");
    return;
  }
  const c = result.counts;
  print(`${result.reset ? "Reset and seeded" : "Seeded"} demo user ${result.userId}`);
  print(`  email: ${result.email}`);
  print(`  password: ${result.password}`);
  print(`  role: ${result.role}`);
  print(`  paper account: ${PAPER_ACCOUNT_ALIAS}`);
  print(
    `  signals: ${c.signals} (${c.rejected} rejected; ${c.duplicates} duplicates answered, not stored)`,
  );
  print(`  orders: ${c.orders}, fills: ${c.fills}`);
  print(`  trades: ${c.trades} (${c.closedTrades} closed), open positions: ${c.openPositions}`);
  print(`  bars: ${c.bars}, watchlist entries: ${c.watchlist}`);
  print(`  trendlines: ${c.trendlines}, trendline events: ${c.trendlineEvents}`);
  print("Copy the webhook key below now: it is shown only this once and cannot be recovered.");
  print(result.webhookKey);
}

if (import.meta.main) await main(Deno.args);
