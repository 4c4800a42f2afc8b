/**
 * A local stand-in for Upstash's REST API in front of a real redis-server, so `@upstash/redis`
 * (and `@upstash/ratelimit` over it) run in tests against real Redis semantics:
 *
 * - `POST /` with a command array (`["SET","k","v"]`) → `{"result": …}`, or `{"error": …}`
 *   with status 400;
 * - `POST /pipeline` with an array of command arrays → an array of `{result}` / `{error}`;
 * - `POST /multi-exec`, the same inside MULTI … EXEC on a connection of its own;
 * - `Authorization: Bearer <token>` required (401 otherwise);
 * - `Upstash-Encoding: base64` (the client's default) → every string in a result base64-encoded.
 *
 * Upstash's Lua dialect marks scripts `#!lua flags=allow-key-locking`, a flag Redis 7.0 refuses;
 * the bridge drops flags Redis does not know and keeps the client's script hashes (SHA-1 of the
 * text it sent) working for EVALSHA.
 */
import { connectResp, type RespConnection, RespError, type RespValue } from "./resp.ts";

/** Options of {@linkcode startUpstashBridge}. */
export interface UpstashBridgeOptions {
  /** The bearer token clients must send (a random one by default). */
  token?: string;
  /** The Redis database index the bridge selects (default 9, away from other users' data). */
  db?: number;
  redis?: { hostname: string; port: number };
}

/** How a simulated outage answers: 503 at once, or no answer until restored. */
export type BridgeOutage = "error" | "hang";

/** A running bridge. */
export interface UpstashBridge extends AsyncDisposable {
  /** The REST URL to give `@upstash/redis` (`UPSTASH_REDIS_REST_URL`). */
  readonly url: string;
  /** The token it accepts (`UPSTASH_REDIS_REST_TOKEN`). */
  readonly token: string;
  /** Every command forwarded to Redis so far, as sent by the client (name upper-cased). */
  readonly commands: string[][];
  /** Starts an outage: requests get 503, or hang until {@linkcode restore} or close. */
  outage(kind: BridgeOutage): void;
  /** Ends the outage; hanging requests are released with 503. */
  restore(): void;
  /** Deletes the keys matching a glob `pattern` in the bridge's database; resolves their count. */
  deleteKeys(pattern: string): Promise<number>;
  close(): Promise<void>;
}

/** Script flags Redis 7.0 understands in a `#!lua flags=` shebang. */
const REDIS_SCRIPT_FLAGS = new Set([
  "no-writes",
  "allow-oom",
  "allow-stale",
  "no-cluster",
  "allow-cross-slot-keys",
]);

/** Starts a bridge on a free loopback port, connected to Redis (127.0.0.1:6379 by default). */
export async function startUpstashBridge(
  options: UpstashBridgeOptions = {},
): Promise<UpstashBridge> {
  const token = options.token ?? crypto.randomUUID();
  const db = options.db ?? 9;
  const target = { ...options.redis ?? { hostname: "127.0.0.1", port: 6379 }, db };
  const redis = await connectResp(target);
  const commands: string[][] = [];
  /** Client script hash → hash of the text Redis actually holds. */
  const scriptHashes = new Map<string, string>();
  let outage: BridgeOutage | undefined;
  const held = new Set<() => void>();

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      if (outage === "error") return json({ error: "Service Unavailable" }, 503);
      if (outage === "hang") {
        // Held even when the client gives up, as a stuck server would; released on restore.
        await new Promise<void>((resolve) => held.add(resolve));
        return json({ error: "Service Unavailable" }, 503);
      }
      if (req.headers.get("authorization") !== `Bearer ${token}`) {
        return json({ error: "Unauthorized" }, 401);
      }
      if (req.method !== "POST") return json({ error: "Method Not Allowed" }, 405);
      const base64 = req.headers.get("upstash-encoding")?.toLowerCase() === "base64";
      const path = new URL(req.url).pathname;
      let body: unknown;
      try {
        body = await req.json();
      } catch {
        return json({ error: "ERR failed to parse command" }, 400);
      }
      try {
        if (path === "/") {
          if (!isCommand(body)) return json({ error: "ERR failed to parse command" }, 400);
          const reply = await run(redis, body);
          return reply instanceof RespError
            ? json({ error: reply.message }, 400)
            : json({ result: encode(reply, base64) });
        }
        if (path === "/pipeline" || path === "/multi-exec") {
          if (!Array.isArray(body) || !body.every(isCommand)) {
            return json({ error: "ERR failed to parse pipeline request" }, 400);
          }
          const replies = path === "/pipeline"
            ? await sequence(redis, body)
            : await transaction(body);
          if (replies instanceof RespError) return json({ error: replies.message }, 400);
          return json(
            replies.map((r) =>
              r instanceof RespError ? { error: r.message } : { result: encode(r, base64) }
            ),
          );
        }
        return json({ error: "Not Found" }, 404);
      } catch (e) {
        return json({ error: `ERR bridge: ${e instanceof Error ? e.message : String(e)}` }, 500);
      }
    },
  );

  /** Runs commands in MULTI … EXEC on a connection of their own, so nothing interleaves. */
  async function transaction(body: unknown[][]): Promise<RespValue[] | RespError> {
    await using conn = await connectResp(target);
    await conn.send(["MULTI"]);
    const queued = await sequence(conn, body);
    const failed = queued.find((q) => q instanceof RespError);
    if (failed) {
      await conn.send(["DISCARD"]);
      return failed as RespError;
    }
    const exec = await conn.send(["EXEC"]);
    if (exec instanceof RespError || !Array.isArray(exec)) {
      return exec instanceof RespError ? exec : new RespError("EXECABORT transaction discarded");
    }
    return exec;
  }

  /** Forwards commands one after another, in the order given. */
  async function sequence(conn: RespConnection, body: unknown[][]): Promise<RespValue[]> {
    const replies: RespValue[] = [];
    for (const command of body) replies.push(await run(conn, command));
    return replies;
  }

  /** Forwards one command, translating script text and hashes. */
  async function run(conn: RespConnection, command: unknown[]): Promise<RespValue> {
    const args = command.map(arg);
    const name = args[0]!.toUpperCase();
    commands.push([name, ...args.slice(1)]);
    if ((name === "EVAL" || name === "EVAL_RO") && args[1] !== undefined) {
      const script = args[1];
      const redisScript = await remember(script);
      return conn.send([args[0]!, redisScript, ...args.slice(2)]);
    }
    if ((name === "EVALSHA" || name === "EVALSHA_RO") && args[1] !== undefined) {
      return conn.send([
        args[0]!,
        scriptHashes.get(args[1].toLowerCase()) ?? args[1],
        ...args.slice(2),
      ]);
    }
    if (name === "SCRIPT" && args[1]?.toUpperCase() === "LOAD" && args[2] !== undefined) {
      const reply = await conn.send(["SCRIPT", "LOAD", await remember(args[2])]);
      return reply instanceof RespError ? reply : await sha1(args[2]);
    }
    if (name === "SCRIPT" && args[1]?.toUpperCase() === "EXISTS") {
      const hashes = args.slice(2).map((h) => scriptHashes.get(h.toLowerCase()) ?? h);
      return conn.send(["SCRIPT", "EXISTS", ...hashes]);
    }
    return conn.send(args);
  }

  /** Rewrites a script for Redis and maps the client's hash of it to Redis's. */
  async function remember(script: string): Promise<string> {
    const redisScript = withRedisFlags(script);
    if (redisScript !== script) scriptHashes.set(await sha1(script), await sha1(redisScript));
    return redisScript;
  }

  const bridge: UpstashBridge = {
    url: `http://127.0.0.1:${server.addr.port}`,
    token,
    commands,
    outage(kind) {
      outage = kind;
    },
    restore() {
      outage = undefined;
      for (const release of held) release();
      held.clear();
    },
    async deleteKeys(pattern) {
      let cursor = "0";
      let deleted = 0;
      do {
        const reply = await redis.send(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]);
        if (!Array.isArray(reply)) throw new Error(`Cannot scan Redis: ${String(reply)}`);
        cursor = String(reply[0]);
        const keys = (reply[1] as string[]) ?? [];
        if (keys.length > 0) deleted += Number(await redis.send(["DEL", ...keys]));
      } while (cursor !== "0");
      return deleted;
    },
    async close() {
      bridge.restore();
      await server.shutdown();
      await redis.close();
    },
    [Symbol.asyncDispose]() {
      return bridge.close();
    },
  };
  return bridge;
}

function isCommand(value: unknown): value is unknown[] {
  return Array.isArray(value) && value.length > 0;
}

/** A command argument as Redis receives it: the client sends strings, numbers and booleans. */
function arg(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** A reply as Upstash returns it; with base64 encoding every string is encoded. */
function encode(value: RespValue, base64: boolean): unknown {
  if (value instanceof RespError) return value.message;
  if (Array.isArray(value)) return value.map((v) => encode(v, base64));
  if (typeof value === "string" && base64) {
    const bytes = new TextEncoder().encode(value);
    return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
  }
  return value;
}

/** Keeps only the shebang flags Redis knows; a script without a shebang is unchanged. */
function withRedisFlags(script: string): string {
  const match = /^#!lua([^\n]*)/.exec(script);
  if (!match) return script;
  const flags = /flags=(\S*)/.exec(match[1]!)?.[1]?.split(",").filter((f) =>
    REDIS_SCRIPT_FLAGS.has(f)
  );
  const shebang = flags && flags.length > 0 ? `#!lua flags=${flags.join(",")}` : "#!lua";
  return shebang + script.slice(match[0].length);
}

async function sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function json(body: unknown, status = 200): Response {
  return Response.json(body, { status });
}
