/**
 * Helpers of the hot-path suites (pipeline_test.ts, crash_test.ts): a fresh PostgreSQL database
 * with a connection of the test's own, the runtime in-process, webhook posts, the standard error
 * body, and bounded waits.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import type { Db, Queryable } from "../db/client.ts";
import { openPostgres } from "../db/postgres.ts";
import { createCipher } from "../lib/crypto.ts";
import { uuidv7 } from "../lib/ids.ts";
import { type LogFields, memoryLogger } from "../lib/log.ts";
import { type Runtime, start, type StartOptions } from "../main.ts";
import { createPostgresDatabase } from "./_db.ts";
import { accessTokenFor, insertTrader } from "./_fixtures.ts";
import { startFakeAlpaca } from "./fakes/alpaca.ts";

/** The webhook route. */
export const WEBHOOK_PATH = "/api/v1/webhooks/tradingview";
/** A JWT secret the suites sign their own access tokens with. */
export const JWT_SECRET = "pipeline-test-jwt-secret-0123456789abcdef";
/** A fixed 32-byte ENCRYPTION_KEY (hex), so a restarted server can read what the first sealed. */
export const ENCRYPTION_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/** A temporary folder, removed when disposed. */
export async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A fresh, empty PostgreSQL database and a small pool of the test's own on it. */
export interface FreshDatabase extends AsyncDisposable {
  url: string;
  db: Db;
}

/** Creates a database on the test server; disposing closes the pool and drops it. */
export async function freshDatabase(): Promise<FreshDatabase> {
  const { url, drop } = await createPostgresDatabase();
  const db = openPostgres(url, { poolSize: 3 });
  return {
    url,
    db,
    async [Symbol.asyncDispose]() {
      try {
        await db.close();
      } finally {
        await drop();
      }
    },
  };
}

/** The runtime booted in-process, with the log lines it wrote. */
export interface InProcess extends AsyncDisposable {
  url: string;
  runtime: Runtime;
  lines: LogFields[];
}

/**
 * Boots `start()` on loopback with `env` over test defaults, and `options` (e.g. shorter hub
 * intervals, a fake clock); disposing shuts it down.
 */
export async function startInProcess(
  env: Record<string, string>,
  options: Pick<StartOptions, "hub" | "clock"> = {},
): Promise<InProcess> {
  const data = await tempDir("trendedge-pipeline-");
  const { log, lines } = memoryLogger("info");
  let runtime: Runtime;
  try {
    runtime = await start(
      loadConfig({
        APP_ENV: "test",
        HOST: "127.0.0.1",
        PORT: "0",
        DATA_DIR: data.path,
        SHUTDOWN_TIMEOUT_MS: "5000",
        JWT_SECRET,
        ENCRYPTION_KEY,
        ...env,
      }),
      { ...options, log },
    );
  } catch (error) {
    await data[Symbol.asyncDispose]();
    throw error;
  }
  return {
    url: runtime.url,
    runtime,
    lines,
    async [Symbol.asyncDispose]() {
      try {
        assert.equal(await runtime.shutdown("test over"), true, "the runtime stopped cleanly");
      } finally {
        await data[Symbol.asyncDispose]();
      }
    },
  };
}

/** A webhook answer, its body read. */
export interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** Options of {@linkcode postAlert}. */
export interface PostOptions {
  /** The Content-Type header; null sends none. Default: application/json for objects. */
  contentType?: string | null;
  headers?: Record<string, string>;
  /** Fails the post instead of waiting longer for the answer (default 30 s). */
  timeoutMs?: number;
}

/**
 * Posts an alert: an object is sent as JSON, a string as is, bytes or a stream unchanged (a
 * stream goes out chunked, without Content-Length).
 */
export async function postAlert(
  baseUrl: string,
  alert: unknown,
  options: PostOptions = {},
): Promise<Answer> {
  const headers = new Headers(options.headers);
  let body: BodyInit;
  if (alert instanceof Uint8Array || alert instanceof ReadableStream) {
    body = alert as BodyInit;
  } else if (typeof alert === "string") {
    // As bytes, so that fetch adds no text/plain of its own.
    body = new TextEncoder().encode(alert);
  } else {
    body = new TextEncoder().encode(JSON.stringify(alert));
    if (options.contentType === undefined) headers.set("content-type", "application/json");
  }
  if (options.contentType) headers.set("content-type", options.contentType);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new Error(`no answer from the webhook within ${timeoutMs} ms`)),
    timeoutMs,
  );
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${baseUrl}${WEBHOOK_PATH}`, {
      method: "POST",
      headers,
      body,
      signal: abort.signal,
      ...(alert instanceof ReadableStream ? { duplex: "half" } : {}),
    } as RequestInit);
    text = await res.text();
  } finally {
    clearTimeout(timer);
  }
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: left as text for the assertion message
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Asserts the standard error body with `status` and `code`; returns its `error`. */
export function assertError(answer: Answer, status: number, code: string) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers.get("content-type")?.split(";")[0], "application/json");
  const error = answer.body?.error;
  assert.ok(error && typeof error === "object", `a standard error body: ${answer.body}`);
  assert.deepEqual(Object.keys(error).sort(), [
    "code",
    "details",
    "message",
    "request_id",
    "timestamp",
  ]);
  assert.equal(error.code, code);
  assert.equal(typeof error.message, "string");
  assert.ok(error.message.length > 0);
  assert.ok(Array.isArray(error.details));
  assert.equal(error.request_id, answer.headers.get("x-request-id"));
  assert.ok(!Number.isNaN(Date.parse(error.timestamp)));
  return error as {
    code: string;
    message: string;
    details: Array<{ field?: string; message: string }>;
  };
}

/** Polls `fn` every 50 ms until it returns true; fails after `ms`. */
export async function eventually(
  what: string,
  fn: () => Promise<boolean>,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() >= deadline) assert.fail(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Waits until the signal is `filled`: by the executor's `trade.updated` event in-process (it is
 * published after the fill's transaction commits), or at once when the database already says so.
 */
export async function waitFilled(
  runtime: Runtime,
  db: Db,
  signalId: string,
  ms = 15_000,
): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<boolean>();
  const unsubscribe = runtime.bus.subscribe((e) => {
    if (e.type === "trade.updated" && e.signalId === signalId && e.data.status === "filled") {
      resolve(true);
    }
  });
  const timer = setTimeout(() => resolve(false), ms);
  try {
    const [row] = await db.query<{ status: string }>("SELECT status FROM signals WHERE id = $1", [
      signalId,
    ]);
    if (row?.status === "filled") return;
    if (!(await promise)) assert.fail(`signal ${signalId} was not filled within ${ms} ms`);
  } finally {
    clearTimeout(timer);
    unsubscribe();
  }
}

/** How many rows `sql` counts (a `SELECT count(*)::int AS n …`). */
export async function count(db: Db, sql: string, params: unknown[] = []): Promise<number> {
  const [row] = await db.query<{ n: number }>(sql, params);
  return row?.n ?? 0;
}

/** A minimal valid alert for `key`. */
export function alert(key: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { key, ticker: "NASDAQ:AAPL", action: "buy", quantity: 1, price: 190.25, ...fields };
}

/** 32 bytes from 64 hex characters (as config.ts reads ENCRYPTION_KEY). */
export function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/**
 * Gives `userId` an Alpaca paper account `alpaca-paper` with the fake Alpaca's default keys,
 * sealed with ENCRYPTION_KEY as the runtime expects (written directly, not through the API).
 */
export async function insertAlpacaAccount(db: Queryable, userId: string): Promise<void> {
  const cipher = await createCipher(hexBytes(ENCRYPTION_KEY));
  const credentials = await cipher.encrypt(
    JSON.stringify({ keyId: "test-key-id", secretKey: "test-secret-key" }),
  );
  await db.query(
    "INSERT INTO broker_accounts (id, user_id, alias, broker, live, credentials) VALUES ($1, $2, 'alpaca-paper', 'alpaca', false, $3)",
    [uuidv7(), userId, credentials],
  );
}

/** An order POST the tap relayed, with the status the broker answered. */
export interface TappedPost {
  clientOrderId: string;
  status: number;
}

/** Options of {@linkcode startAlpacaTap}. */
export interface AlpacaTapOptions {
  /**
   * How long a successful order POST's answer is held back after the broker recorded the order,
   * so that a crash can land between "the broker has it" and "we know it".
   */
  holdMs?: number;
  /** Called, synchronously, when an answer starts being held back. */
  onHold?: (clientOrderId: string) => void;
}

/** A recording HTTP relay in front of a (fake) broker. */
export interface AlpacaTap extends AsyncDisposable {
  url: string;
  /** Every order POST, in the order the broker answered them. */
  posts: TappedPost[];
  /** Client order ids looked up (`GET /v2/orders:by_client_order_id`), in order. */
  lookups: string[];
}

const HOP_HEADERS = ["connection", "content-length", "transfer-encoding", "host", "keep-alive"];

/** Relays every request to `target` (a base URL), recording order POSTs and lookups. */
export function startAlpacaTap(target: string, options: AlpacaTapOptions = {}): AlpacaTap {
  const posts: TappedPost[] = [];
  const lookups: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.method === "GET" || req.method === "HEAD"
      ? undefined
      : new Uint8Array(await req.arrayBuffer());
    const headers = new Headers(req.headers);
    for (const h of HOP_HEADERS) headers.delete(h);
    const upstream = await fetch(`${target}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body,
    });
    const answer = new Uint8Array(await upstream.arrayBuffer());
    const out = new Headers(upstream.headers);
    for (const h of HOP_HEADERS) out.delete(h);
    if (url.pathname === "/v2/orders:by_client_order_id") {
      lookups.push(url.searchParams.get("client_order_id") ?? "");
    }
    if (url.pathname === "/v2/orders" && req.method === "POST" && body) {
      const clientOrderId = String(
        (JSON.parse(new TextDecoder().decode(body)) as { client_order_id?: unknown })
          .client_order_id,
      );
      posts.push({ clientOrderId, status: upstream.status });
      if (upstream.ok && options.holdMs) {
        options.onHold?.(clientOrderId);
        await new Promise((r) => setTimeout(r, options.holdMs));
      }
    }
    return new Response(answer, { status: upstream.status, headers: out });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    posts,
    lookups,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Runs `fn` over `items` with at most `limit` in flight, while `go()` says so. */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  go: () => boolean = () => true,
): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (go() && next < items.length) await fn(items[next++]!);
  }));
}

/** Alpaca API keys as `POST /api/v1/accounts` takes them. */
export interface AlpacaKeys {
  key_id: string;
  secret_key: string;
}

/**
 * The runtime in-process on a fresh PostgreSQL database beside a fake Alpaca that accepts
 * `keys`, with a trader and an access token of theirs (`addAccount` gives them an Alpaca account
 * with those keys); disposing stops all three.
 */
export async function startAlpacaRuntime(keys: AlpacaKeys, prices: Record<string, string>) {
  const stack = new AsyncDisposableStack();
  try {
    const alpaca = stack.use(
      startFakeAlpaca({ keyId: keys.key_id, secretKey: keys.secret_key, prices }),
    );
    const database = stack.use(await freshDatabase());
    const server = stack.use(
      await startInProcess({ DATABASE_URL: database.url, ALPACA_BASE_URL: alpaca.url }),
    );
    const { db } = database;
    const trader = await insertTrader(db);
    const { token } = await accessTokenFor(db, { id: trader.userId, role: "trader" }, {
      secret: JWT_SECRET,
      now: Date.now(),
    });
    const moved = stack.move();
    return {
      alpaca,
      db,
      server,
      trader,
      token,
      /** Adds the trader's Alpaca account `alias` with `keys` through the API, as a trader does. */
      async addAccount(alias: string) {
        const created = await fetch(`${server.url}/api/v1/accounts`, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ alias, broker: "alpaca", credentials: keys }),
        });
        assert.equal(created.status, 201, await created.text());
      },
      /** A signal's status, undefined while there is no such signal. */
      async statusOf(signalId: string): Promise<string | undefined> {
        const [row] = await db.query<{ status: string }>(
          "SELECT status FROM signals WHERE id = $1",
          [signalId],
        );
        return row?.status;
      },
      [Symbol.asyncDispose]: () => moved.disposeAsync(),
    };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}
