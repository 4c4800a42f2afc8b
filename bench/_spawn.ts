/**
 * Starts a bench server (`bench/_server.ts`) in its own process and stops it: SIGTERM, then
 * SIGKILL after a grace period, then removes what it was given (a temp data folder, a throwaway
 * PostgreSQL database). The child also exits when its standard input closes, so it dies with a
 * bench that was killed outright.
 *
 * BENCH_SERVER_FLAGS adds `deno run` flags to every server it starts, to look inside one under
 * load: `BENCH_SERVER_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" deno task bench pipeline` writes
 * a V8 CPU profile per server when it stops (a sampled wall-clock profile: time a thread spends
 * descheduled inside a syscall, such as a socket write that wakes PostgreSQL on a full machine,
 * shows up as that syscall).
 */
import postgres from "postgres";
import { processCpuSeconds } from "./_cpu.ts";
import { DEFAULT_DATABASE_URL, type ServerMode } from "./_server.ts";

const ROOT = new URL("../", import.meta.url);
const SERVER_SCRIPT = new URL("./_server.ts", import.meta.url);
const TAIL_CHARS = 8_000;

/** Options of {@linkcode spawnServer}. */
export interface SpawnOptions {
  /** `app` mode only: run on PostgreSQL instead of PGlite. */
  postgres?: boolean;
  /** How long to wait for the `{"url": ...}` line. Default 60000 (PGlite runs initdb). */
  startTimeoutMs?: number;
  /** How long SIGTERM may take before SIGKILL. Default 10000. */
  stopTimeoutMs?: number;
  /**
   * `app` mode only: configuration variables laid over the bench server's defaults (e.g.
   * `WEBHOOK_RATE_LIMIT_PER_MINUTE`); passed to it as BENCH_APP_CONFIG.
   */
  appConfig?: Record<string, string>;
  /** `app` mode only: also serve `bench/_static_page.ts`'s plain page (the paint bench). */
  staticPage?: boolean;
  /** `hub` mode only: users to create, each with an access token (BENCH_HUB_USERS). */
  hubUsers?: number;
}

/** A running bench server. */
export interface BenchServer extends AsyncDisposable {
  mode: ServerMode;
  /** "pglite" or "postgres" when the server has a database. */
  database?: "pglite" | "postgres";
  url: string;
  /** The server's ready line, parsed: `url` and whatever else its mode reports. */
  ready: Record<string, unknown>;
  /** The throwaway PostgreSQL database the server uses (to seed or inspect it), if any. */
  databaseUrl?: string;
  pid: number;
  /** CPU seconds (user + system, every thread) the server process has used; NaN off Linux. */
  cpuSeconds(): number;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** The last lines the server wrote (its log goes to stderr). */
  output(): string;
  /** Stops the process and removes its data; safe to call twice. */
  stop(): Promise<void>;
}

const live = new Set<BenchServer>();

/** The PostgreSQL server the benches use: BENCH_DATABASE_URL, TEST_DATABASE_URL or the local one. */
export function benchDatabaseUrl(): string {
  return Deno.env.get("BENCH_DATABASE_URL") ?? Deno.env.get("TEST_DATABASE_URL") ??
    DEFAULT_DATABASE_URL;
}

let databaseCount = 0;

/** Creates a throwaway database; returns its URL and a function that drops it. */
async function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = benchDatabaseUrl();
  const name = `trendedge_bench_${Deno.pid}_${++databaseCount}`;
  const admin = postgres(base, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } catch (error) {
    await admin.end({ timeout: 1 }).catch(() => {});
    throw new Error(
      `Cannot create a bench database on ${redactUrl(base)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}

function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = "***";
    return url.href;
  } catch {
    return "(unparsable URL)";
  }
}

/**
 * Starts `bench/_server.ts <mode>` and resolves once it listens.
 *
 * @example
 * await using server = await spawnServer("floor");
 * const result = await runOpenLoop({ url: `${server.url}/health`, ratePerSecond: 500, durationMs: 1000 });
 */
export async function spawnServer(
  mode: ServerMode,
  options: SpawnOptions = {},
): Promise<BenchServer> {
  const cleanup: Array<() => Promise<unknown>> = [];
  const env: Record<string, string> = { NO_COLOR: "1" };
  const flags = (Deno.env.get("BENCH_SERVER_FLAGS") ?? "").split(/\s+/).filter((f) => f !== "");
  const args = [
    "run",
    "--allow-all",
    ...flags,
    SERVER_SCRIPT.pathname,
    mode,
    "--exit-on-stdin-eof",
  ];
  // `hub` is the app with the bench's users and trigger: always on PostgreSQL.
  const isApp = mode === "app" || mode === "hub";
  const usesPostgres = mode === "floor-insert" || mode === "floor-writes" || mode === "hub" ||
    (mode === "app" && options.postgres === true);
  if (isApp && options.appConfig) env.BENCH_APP_CONFIG = JSON.stringify(options.appConfig);
  if (mode === "hub" && options.hubUsers !== undefined) {
    env.BENCH_HUB_USERS = String(options.hubUsers);
  }
  if (mode === "app" && options.staticPage) args.push("--static-page");
  try {
    if (isApp) {
      const dataDir = await Deno.makeTempDir({ prefix: "trendedge-bench-" });
      cleanup.unshift(() =>
        Deno.remove(dataDir, { recursive: true }).catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        })
      );
      env.BENCH_DATA_DIR = dataDir;
      args.push("--remove-data-dir");
    }
    if (usesPostgres) {
      const database = await createDatabase();
      cleanup.unshift(database.drop);
      env.DATABASE_URL = database.url;
      if (isApp) args.push("--postgres");
    }
  } catch (error) {
    for (const step of cleanup) await step().catch(() => {});
    throw error;
  }

  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  let exited = false;
  const status = child.status.finally(() => exited = true);
  let tail = "";
  const keep = (text: string) => {
    tail = (tail + text).slice(-TAIL_CHARS);
  };
  const listening = Promise.withResolvers<Record<string, unknown>>();
  const readStdout = (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        keep(line + "\n");
        try {
          const ready = JSON.parse(line) as Record<string, unknown>;
          if (typeof ready.url === "string") listening.resolve(ready);
        } catch {
          // not the ready line
        }
      }
    }
  })();
  const readStderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) keep(chunk);
  })();
  status.then((s) =>
    listening.reject(new Error(`Cannot start the "${mode}" bench server: it exited with ${s.code}`))
  );
  const timer = setTimeout(
    () => listening.reject(new Error(`Cannot start the "${mode}" bench server: no URL in time`)),
    options.startTimeoutMs ?? 60_000,
  );

  let stopping: Promise<void> | undefined;
  const server: BenchServer = {
    mode,
    database: mode === "floor" || mode === "ws-floor"
      ? undefined
      : usesPostgres
      ? "postgres"
      : "pglite",
    url: "",
    ready: {},
    databaseUrl: env.DATABASE_URL,
    pid: child.pid,
    cpuSeconds: () => processCpuSeconds(child.pid),
    get exited() {
      return exited;
    },
    output: () => tail,
    stop() {
      stopping ??= (async () => {
        if (!exited) {
          try {
            child.kill("SIGTERM");
          } catch {
            // it exited meanwhile
          }
          let graceTimer: ReturnType<typeof setTimeout> | undefined;
          const graceful = await Promise.race([
            status.then(() => true),
            new Promise<boolean>((resolve) =>
              graceTimer = setTimeout(() => resolve(false), options.stopTimeoutMs ?? 10_000)
            ),
          ]);
          clearTimeout(graceTimer);
          if (!graceful) {
            try {
              child.kill("SIGKILL");
            } catch {
              // it exited meanwhile
            }
          }
        }
        await status;
        await stdin.close().catch(() => {});
        await Promise.all([readStdout, readStderr]).catch(() => {});
        for (const step of cleanup) await step().catch(() => {});
        live.delete(server);
      })();
      return stopping;
    },
    [Symbol.asyncDispose]() {
      return server.stop();
    },
  };
  live.add(server);

  try {
    server.ready = await listening.promise;
    server.url = server.ready.url as string;
    return server;
  } catch (error) {
    await server.stop();
    throw new Error(`${(error as Error).message}; its output:\n${tail}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** Stops every server this process started and has not stopped yet (for signal handlers). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

/** Runs one bench file on its own (`deno run -A bench/<name>.ts`), stopping its servers after. */
export async function runStandalone(bench: () => Promise<void>): Promise<void> {
  try {
    await bench();
  } finally {
    await stopAllServers();
  }
}
