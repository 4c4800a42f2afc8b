/**
 * A system under test, run in its own process so that the load client and the server do not
 * share an event loop (the machines have 2 cores: one each).
 *
 *     deno run -A bench/_server.ts <floor|floor-insert|app|ws-floor|hub> [--postgres]
 *       [--exit-on-stdin-eof] [--remove-data-dir] [--static-page]
 *
 * Prints one JSON line `{"url": ..., "mode": ..., "pid": ...}` on stdout once it listens on
 * 127.0.0.1 (random port), and exits 0 after a clean shutdown on SIGTERM or SIGINT (or when its
 * standard input closes, with `--exit-on-stdin-eof`, so it dies with a parent that was killed;
 * `--remove-data-dir` then removes BENCH_DATA_DIR too, which that parent no longer can).
 *
 * Modes:
 * - `floor`: a bare `Deno.serve` answering `{"status":"ok"}` to anything — the HTTP floor.
 * - `floor-insert`: the same, plus one INSERT per request over postgres.js into a table it
 *   creates (and drops on exit) in `DATABASE_URL` — the hot-path floor DESIGN.md names.
 * - `floor-writes`: a bare `Deno.serve` that makes the app's durable writes for a paper fill in
 *   the plainest way, over postgres.js into the app's own schema (migrated into `DATABASE_URL`,
 *   one trader): per request, one statement (one commit) writes the dedup row, the signal and its
 *   `signal.accepted` entry, and answers 202 (200 for a duplicate); then, not awaited, a second
 *   statement writes the filled order, its fill, the position, four journal entries and the
 *   signal's `filled` state. No authentication, validation, risk check, batching or actor: a
 *   reference for what the writes alone cost, not the floor.
 * - `app`: the real runtime, `start()` from main.ts, in production mode with random secrets,
 *   LOG_LEVEL=warning (at info the access log writes one JSON line per request and would be what
 *   we measure), RATE_LIMIT_PER_MINUTE=1000000, DATA_DIR=`BENCH_DATA_DIR` (required), on PGlite
 *   under it, or on `DATABASE_URL` with `--postgres`. Its log goes to stderr. BENCH_APP_CONFIG, a
 *   JSON object of strings, is laid over these settings (e.g. WEBHOOK_RATE_LIMIT_PER_MINUTE).
 *   With `--static-page` the script mounts `GET /bench/static-page?bytes=N&css=/static/…` on
 *   the running app (`Runtime.app`, as tests mount routes; the product has no such route): a
 *   plain HTML page of exactly N bytes, no script, for the paint bench's baseline
 *   (`bench/_static_page.ts`), answered through the same middleware as every page.
 * - `ws-floor`: a bare `Deno.serve` + `Deno.upgradeWebSocket` that broadcasts each round's
 *   messages to its sockets (bench/_hub_server.ts) — the WebSocket floor.
 * - `hub`: `app` (on `DATABASE_URL`) plus BENCH_HUB_USERS (default 100) users with access tokens
 *   and a bench-only trigger that publishes rounds of events on the runtime's EventBus
 *   (bench/_hub_server.ts). Its ready line adds `trigger` (the trigger's URL) and `tokens_file`
 *   (a JSON array of the tokens, under BENCH_DATA_DIR: tokens never go to the output).
 *
 * The environment is read here rather than through config.ts because this is a harness, not
 * the app: `app` mode still builds its configuration with `loadConfig()` from an explicit record.
 */
import postgres from "postgres";
import { createLogger, serializeError } from "../lib/log.ts";
import type { Runtime } from "../main.ts";

/** The kinds of server this script runs. */
export const SERVER_MODES = [
  "floor",
  "floor-insert",
  "floor-writes",
  "app",
  "ws-floor",
  "hub",
] as const;
/** A kind of server this script runs. */
export type ServerMode = typeof SERVER_MODES[number];

/** The PostgreSQL server benches use unless BENCH_DATABASE_URL or TEST_DATABASE_URL says otherwise. */
export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test";

const encoder = new TextEncoder();
const OK_BODY = JSON.stringify({ status: "ok" });
const JSON_HEADERS = { "content-type": "application/json" };

interface Running {
  url: string;
  /** More fields for the ready line. */
  ready?: Record<string, unknown>;
  stop(): Promise<boolean>;
}

function writeStderr(line: string) {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function listenOptions(onListen: (addr: Deno.NetAddr) => void): Deno.ServeTcpOptions {
  return { hostname: "127.0.0.1", port: 0, onListen };
}

function urlOf(addr: Deno.NetAddr): string {
  return `http://${addr.hostname}:${addr.port}`;
}

async function startFloor(): Promise<Running> {
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    listenOptions(listening.resolve),
    () => new Response(OK_BODY, { headers: JSON_HEADERS }),
  );
  const url = urlOf(await listening.promise);
  return {
    url,
    async stop() {
      await server.shutdown();
      return true;
    },
  };
}

async function startFloorInsert(databaseUrl: string): Promise<Running> {
  const sql = postgres(databaseUrl, { max: 10, onnotice: () => {}, connect_timeout: 10 });
  const table = `bench_floor_insert_${Deno.pid}`;
  await sql.unsafe(
    `CREATE TABLE IF NOT EXISTS ${table} (
       id bigserial PRIMARY KEY,
       received_at timestamptz NOT NULL DEFAULT now(),
       body jsonb NOT NULL
     )`,
  );
  const insert = `INSERT INTO ${table} (body) VALUES ($1::jsonb)`;
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(listenOptions(listening.resolve), async (req) => {
    const body = req.method === "POST" ? await req.text() : "{}";
    try {
      await sql.unsafe(insert, [body], { prepare: true });
    } catch (error) {
      return new Response(JSON.stringify({ error: String(error) }), {
        status: 500,
        headers: JSON_HEADERS,
      });
    }
    return new Response(OK_BODY, { headers: JSON_HEADERS });
  });
  const url = urlOf(await listening.promise);
  return {
    url,
    async stop() {
      await server.shutdown();
      await sql.unsafe(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
      await sql.end({ timeout: 5 });
      return true;
    },
  };
}

/** `floor-writes`: the dedup row, the signal, `signal.accepted` — the acknowledged part. */
const FLOOR_ACCEPT = `WITH dedup AS (
     INSERT INTO signal_dedup (user_id, dedup_key, signal_id, expires_at)
     VALUES ($1, $2, $3, $4::timestamptz + interval '60 seconds')
     ON CONFLICT (user_id, dedup_key) DO NOTHING RETURNING signal_id
   ), signal AS (
     INSERT INTO signals (id, user_id, account_id, source, dedup_key, raw_body, account_alias, ticker, symbol,
                          action, side, quantity, order_type, time_in_force, price, sender_id, status,
                          received_at, accepted_at)
     SELECT signal_id, $1, $5, 'tradingview', $2, $6, 'paper', $7, $7, $8, $8, $9, 'market', 'day', $10, $11,
            'accepted', $4, $4
     FROM dedup RETURNING id
   ), journaled AS (
     INSERT INTO journal (user_id, account_id, signal_id, event, data, at)
     SELECT $1, $5, id, 'signal.accepted', jsonb_build_object('dedup_key', $2::text, 'source', 'tradingview'), $4
     FROM signal
   )
   SELECT (SELECT id FROM signal) AS accepted`;

/** `floor-writes`: the paper fill — order, fill, position, four journal entries, signal state. */
const FLOOR_FILL = `WITH placed AS (
     INSERT INTO orders (id, user_id, account_id, signal_id, leg, client_order_id, broker_order_id, symbol, side,
                         quantity, order_type, time_in_force, status, broker_status, filled_quantity,
                         average_fill_price, status_history, created_at, updated_at)
     VALUES ($1::uuid, $2, $3, $4::uuid, 'entry', $4::uuid::text, $1::uuid::text, $5, $6, $7, 'market', 'day', 'filled', 'filled', $7, $8,
             jsonb_build_array(jsonb_build_object('status', 'filled', 'at', $9::timestamptz)), $9, $9)
     RETURNING id
   ), filled AS (
     INSERT INTO fills (id, order_id, user_id, account_id, broker_fill_id, symbol, side, quantity, price, filled_at)
     SELECT $10::uuid, id, $2, $3, $10::uuid::text, $5, $6, $7, $8, $9 FROM placed
   ), held AS (
     INSERT INTO positions (account_id, symbol, user_id, quantity, average_price, last_price, opened_at, updated_at)
     VALUES ($3, $5, $2, CASE WHEN $6 = 'buy' THEN $7::numeric ELSE -$7::numeric END, $8, $8, $9, $9)
     ON CONFLICT (account_id, symbol) DO UPDATE
       SET quantity = positions.quantity + EXCLUDED.quantity, last_price = EXCLUDED.last_price,
           updated_at = EXCLUDED.updated_at
   ), journaled AS (
     INSERT INTO journal (user_id, account_id, signal_id, order_id, event, data, at)
     SELECT $2, $3, $4::uuid, placed.id, e.event,
            jsonb_build_object('symbol', $5::text, 'side', $6::text, 'quantity', $7::text, 'price', $8::text), $9
     FROM placed CROSS JOIN (VALUES ('order.created'), ('order.updated'), ('order.filled'), ('signal.filled')) e (event)
   )
   UPDATE signals SET status = 'filled', dispatched_at = $9, ordered_at = $9, filled_at = $9, finished_at = $9
   WHERE id = $4::uuid`;

async function startFloorWrites(databaseUrl: string): Promise<Running> {
  // Setup only: the app's migrations and one trader (the request path below uses none of it).
  const { openPostgres } = await import("../db/postgres.ts");
  const { migrateUp } = await import("../db/migrate.ts");
  const { insertTrader } = await import("../tests/_fixtures.ts");
  const setup = openPostgres(databaseUrl, { poolSize: 1 });
  let trader: { userId: string; accountId: string };
  try {
    await migrateUp(setup);
    trader = await insertTrader(setup);
  } finally {
    await setup.close();
  }
  const sql = postgres(databaseUrl, { max: 10, onnotice: () => {}, connect_timeout: 10 });
  let failures = 0;
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(listenOptions(listening.resolve), async (req) => {
    try {
      const body = await req.text();
      const alert = JSON.parse(body) as Record<string, string | number>;
      const now = new Date();
      const id = crypto.randomUUID();
      const symbol = String(alert.ticker);
      const side = String(alert.action);
      const quantity = String(alert.quantity);
      const price = String(alert.price);
      const [row] = await sql.unsafe(FLOOR_ACCEPT, [
        trader.userId,
        `sender:${alert.id}`,
        id,
        now,
        trader.accountId,
        body,
        symbol,
        side,
        quantity,
        price,
        String(alert.id),
      ], { prepare: true });
      if (!row?.accepted) return new Response(OK_BODY, { headers: JSON_HEADERS });
      const filledAt = new Date();
      sql.unsafe(FLOOR_FILL, [
        crypto.randomUUID(),
        trader.userId,
        trader.accountId,
        id,
        symbol,
        side,
        quantity,
        price,
        filledAt,
        crypto.randomUUID(),
      ], { prepare: true }).catch((error) => {
        if (failures++ < 5) {
          writeStderr(JSON.stringify({ message: "fill failed", error: String(error) }));
        }
      });
      return new Response(JSON.stringify({ signal_id: id }), {
        status: 202,
        headers: JSON_HEADERS,
      });
    } catch (error) {
      return new Response(JSON.stringify({ error: String(error) }), {
        status: 500,
        headers: JSON_HEADERS,
      });
    }
  });
  const url = urlOf(await listening.promise);
  return {
    url,
    async stop() {
      await server.shutdown();
      await sql.end({ timeout: 5 });
      return true;
    },
  };
}

function randomSecret(bytes: number): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(bytes))));
}

/** The settings BENCH_APP_CONFIG lays over the app's (a JSON object of strings). */
function appConfigOverrides(): Record<string, string> {
  const text = Deno.env.get("BENCH_APP_CONFIG");
  if (!text) return {};
  const parsed: unknown = JSON.parse(text);
  if (
    typeof parsed !== "object" || parsed === null || Array.isArray(parsed) ||
    !Object.values(parsed).every((v) => typeof v === "string")
  ) {
    throw new Error(
      'Cannot start the app bench server: "BENCH_APP_CONFIG" must be a JSON object of strings',
    );
  }
  return parsed as Record<string, string>;
}

async function startApp(
  dataDir: string,
  databaseUrl: string | undefined,
  staticPage: boolean,
): Promise<Running & { runtime: Runtime }> {
  // Imported here so that the floors do not load (or register anything from) the runtime.
  const { loadConfig } = await import("../config.ts");
  const { start } = await import("../main.ts");
  const config = loadConfig({
    APP_ENV: "production",
    MIGRATE_ON_START: "true",
    HOST: "127.0.0.1",
    PORT: "0",
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: "warning",
    RATE_LIMIT_PER_MINUTE: "1000000",
    SHUTDOWN_TIMEOUT_MS: "5000",
    JWT_SECRET: randomSecret(48),
    ENCRYPTION_KEY: randomSecret(32),
    OPERATOR_API_KEY: randomSecret(24),
    ...appConfigOverrides(),
  });
  const log = createLogger("trendedge", { level: config.logLevel, sink: writeStderr });
  const runtime = await start(config, { log });
  if (staticPage) {
    const { STATIC_PAGE_PATH, staticPage: page } = await import("./_static_page.ts");
    runtime.app.get(STATIC_PAGE_PATH, (c) => {
      const bytes = Number(c.req.query("bytes"));
      const css = c.req.query("css");
      if (!Number.isInteger(bytes) || bytes < 0 || bytes > 10_000_000) {
        return c.text('"bytes" must be an integer from 0 to 10000000', 400);
      }
      if (css !== undefined && !/^\/static\/[\w.-]+\.css$/.test(css)) {
        return c.text('"css" must be a /static/….css path', 400);
      }
      return c.html(page(bytes, css));
    });
  }
  return { url: runtime.url, runtime, stop: () => runtime.shutdown("bench server stopped") };
}

async function main(args: string[]): Promise<number> {
  const mode = args.find((a) => !a.startsWith("--"));
  if (!SERVER_MODES.includes(mode as ServerMode)) {
    writeStderr(`Cannot start a bench server: mode must be one of ${SERVER_MODES.join(", ")}`);
    return 64; // EX_USAGE
  }
  const databaseUrl = Deno.env.get("DATABASE_URL") ?? DEFAULT_DATABASE_URL;
  let running: Running;
  switch (mode as ServerMode) {
    case "floor":
      running = await startFloor();
      break;
    case "floor-insert":
      running = await startFloorInsert(databaseUrl);
      break;
    case "floor-writes":
      running = await startFloorWrites(databaseUrl);
      break;
    case "ws-floor": {
      const { startWsFloor } = await import("./_hub_server.ts");
      running = await startWsFloor();
      break;
    }
    case "app":
    case "hub": {
      const dataDir = Deno.env.get("BENCH_DATA_DIR");
      if (!dataDir) {
        writeStderr(`Cannot start the ${mode} bench server: "BENCH_DATA_DIR" must be set`);
        return 64;
      }
      let app: Running = await startApp(
        dataDir,
        args.includes("--postgres") ? databaseUrl : undefined,
        args.includes("--static-page"),
      );
      if (mode === "hub") {
        const { addHubBench } = await import("./_hub_server.ts");
        const users = Number(Deno.env.get("BENCH_HUB_USERS") ?? "100");
        app = await addHubBench(app as Running & { runtime: Runtime }, { users, dataDir });
      }
      running = !args.includes("--remove-data-dir") ? app : {
        url: app.url,
        ready: app.ready,
        async stop() {
          const clean = await app.stop();
          await Deno.remove(dataDir, { recursive: true }).catch(() => {});
          return clean;
        },
      };
      break;
    }
  }

  const stopped = Promise.withResolvers<boolean>();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    running.stop().then(stopped.resolve, (error) => {
      writeStderr(
        JSON.stringify({ message: "Bench server stop failed", error: serializeError(error) }),
      );
      stopped.resolve(false);
    });
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, stop);
  if (args.includes("--exit-on-stdin-eof")) {
    (async () => {
      for await (const _ of Deno.stdin.readable) { /* ignore input; wait for EOF */ }
      stop();
    })();
  }
  Deno.stdout.writeSync(
    encoder.encode(
      JSON.stringify({ ...running.ready, url: running.url, mode, pid: Deno.pid }) + "\n",
    ),
  );
  return (await stopped.promise) ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    writeStderr(JSON.stringify({ message: "Bench server failed", error: serializeError(error) }));
    Deno.exit(1);
  }
}
