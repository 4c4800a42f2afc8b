/**
 * Live updates under load: event publish → WebSocket client receive, with CLIENTS clients
 * connected to the real hub (the runtime from main.ts on PostgreSQL: actors/hub.ts behind
 * routes/ws.ts at /api/v1/ws, each client authenticated the real way — its user's access token
 * in `Sec-WebSocket-Protocol: trendedge.v1, bearer.<token>` — and subscribed to every channel),
 * beside a floor: a bare `Deno.serve` + `Deno.upgradeWebSocket` that broadcasts each message to
 * its sockets. Both run in child processes (bench/_server.ts modes `hub` and `ws-floor`, pieces
 * in bench/_hub_server.ts); this process holds every client of both.
 *
 * The hub allows 10 connections per user, so CLIENTS / 10 users, 10 clients each. A round is
 * one event per user, published on the runtime's EventBus by a bench-only trigger in the server
 * process (each event reaches that user's 10 sockets: CLIENTS messages per round); the floor
 * sends one message per group of 10 sockets the same way. Every message carries the round's
 * scheduled time (`sent_at`, wall clock with sub-millisecond precision, one machine), and the
 * client takes `receive − sent_at` first thing in `onmessage`. Rounds are open loop at a fixed
 * interval; WARMUP_ROUNDS are discarded; each side runs REPS times, interleaved, and every
 * message of the measured rounds counts (missing ones too: they must be 0).
 *
 *     deno run -A bench/hub.ts
 */
import { type Percentiles, percentiles } from "./_load.ts";
import { cpuBetween, type CpuUse, sampleCpu } from "./_cpu.ts";
import { median, ms, percent, ratio, writeLine, writeTable } from "./_report.ts";
import { type BenchServer, spawnServer } from "./_spawn.ts";
import type { RoundsAnswer } from "./_hub_server.ts";

/** Clients per side, and the hub's connections per user (its default limit). */
const CLIENTS = 1000;
const PER_USER = 10;
/** Rounds per measured run, the interval between rounds, and the runs per side (interleaved). */
const ROUNDS = 50;
const WARMUP_ROUNDS = 5;
const INTERVAL_MS = 100;
const REPS = 4;
/** Upgrades in flight at once while connecting (no SYN flood on the listen backlog). */
const CONNECT_BATCH = 50;
/** How long after the last round's publish the clients may take to receive it. */
const DRAIN_MS = 5_000;
/** The target: hub p99 ≤ 2 × floor p99. */
const TARGET_P99_RATIO = 2;
/** Cores busy outside the servers and the client above which the tails are mostly noise. */
const REST_BUSY = 0.5;
const WS_PATH = "/api/v1/ws";
const CHANNELS = ["signals", "trades", "trendlines", "system"];

function progress(text: string) {
  Deno.stderr.writeSync(new TextEncoder().encode(`  · ${text}\n`));
}

/** Wall-clock ms with sub-millisecond precision (as the servers stamp `sent_at`). */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Timed out after ${timeoutMs} ms: ${what}`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The soft limit on open files, when /proc says (Linux). */
function openFilesLimit(): number | undefined {
  try {
    const line = Deno.readTextFileSync("/proc/self/limits").split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/** What one run's messages say, filled in by the clients' `onmessage`. */
class Tally {
  /** Receive − sent_at of every message of a measured round, ms. */
  latencies: number[] = [];
  /** Receive − published_at of the same messages (the server's late starts left out). */
  fromPublish: number[] = [];
  received = 0;
  duplicates = 0;
  /** Per client, per round: seen (to count missing and duplicate messages). */
  #seen: Uint8Array[];

  constructor(readonly clients: number, readonly rounds: number, readonly warmup: number) {
    this.#seen = Array.from({ length: clients }, () => new Uint8Array(rounds));
  }

  record(client: number, round: number, latency: number, fromPublish: number) {
    const seen = this.#seen[client];
    if (!seen || !(round >= 0 && round < this.rounds)) return;
    if (seen[round]) {
      this.duplicates++;
      return;
    }
    seen[round] = 1;
    this.received++;
    if (round >= this.warmup) {
      this.latencies.push(latency);
      this.fromPublish.push(fromPublish);
    }
  }

  get expected(): number {
    return this.clients * this.rounds;
  }

  /** Messages of measured rounds that never came. */
  get missing(): number {
    let missing = 0;
    for (const seen of this.#seen) {
      for (let r = this.warmup; r < this.rounds; r++) if (!seen[r]) missing++;
    }
    return missing;
  }
}

/** The clients of one server, and where their messages are tallied. */
export class ClientPool {
  readonly sockets: WebSocket[] = [];
  tally: Tally | undefined;
  #allIn: (() => void) | undefined;
  /** Clients closed before the pool was closed (by the server, or refused). */
  closedEarly = 0;
  #closing = false;

  private constructor(readonly label: string) {}

  /**
   * Connects `clients` clients, CONNECT_BATCH at a time, each offering `protocols(i)` at
   * `url(i)`; resolves once every one has been answered `subscribed` to every channel.
   */
  static async connect(
    label: string,
    clients: number,
    url: (i: number) => string,
    protocols: (i: number) => string[],
    batch = CONNECT_BATCH,
  ): Promise<ClientPool> {
    const pool = new ClientPool(label);
    try {
      for (let first = 0; first < clients; first += batch) {
        const opening: Promise<void>[] = [];
        for (let i = first; i < Math.min(clients, first + batch); i++) {
          opening.push(pool.#open(i, url(i), protocols(i)));
        }
        await Promise.all(opening);
      }
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  #open(i: number, url: string, protocols: string[]): Promise<void> {
    const socket = new WebSocket(url, protocols);
    this.sockets[i] = socket;
    const subscribed = Promise.withResolvers<void>();
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "subscribe", channels: CHANNELS }));
    };
    socket.onerror = (event) =>
      subscribed.reject(
        new Error(`Cannot connect client ${i} to ${this.label}: ${(event as ErrorEvent).message}`),
      );
    socket.onclose = (event) => {
      if (!this.#closing) this.closedEarly++;
      subscribed.reject(
        new Error(`Cannot connect client ${i} to ${this.label}: closed (${event.code})`),
      );
    };
    socket.onmessage = (event) => {
      const at = wallNow();
      // deno-lint-ignore no-explicit-any
      const message = JSON.parse(event.data as string) as Record<string, any>;
      const sentAt = message.data?.sent_at;
      if (typeof sentAt === "number") {
        const tally = this.tally;
        if (!tally) return;
        tally.record(i, message.data.round, at - sentAt, at - message.data.published_at);
        if (tally.received === tally.expected) this.#allIn?.();
      } else if (message.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (message.type === "subscribed") {
        subscribed.resolve();
      }
    };
    return within(subscribed.promise, 15_000, `client ${i} of ${this.label} to subscribe`);
  }

  /** Starts tallying a run of `rounds` rounds; the promise settles when every message came. */
  startRun(rounds: number, warmup: number): Promise<void> {
    this.tally = new Tally(this.sockets.length, rounds, warmup);
    const allIn = Promise.withResolvers<void>();
    this.#allIn = allIn.resolve;
    return allIn.promise;
  }

  /** Closes every client and waits (bounded) for the closes. */
  async close(): Promise<void> {
    this.#closing = true;
    const closed = this.sockets.map((socket) =>
      socket.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => {
        socket.addEventListener("close", () => resolve(), { once: true });
        socket.addEventListener("error", () => {}, { once: true });
        if (socket.readyState !== WebSocket.CLOSING) socket.close(1000);
      })
    );
    await within(Promise.all(closed), 10_000, `the ${this.label} clients to close`).catch(
      () => {},
    );
  }
}

/** One measured run of one side. */
export interface BroadcastRun {
  label: string;
  clients: number;
  rounds: number;
  warmup: number;
  expected: number;
  received: number;
  missing: number;
  duplicates: number;
  /** Receive − sent_at over the measured rounds' messages. */
  latencyMs: Percentiles;
  /** Those latencies, one per message (sorted). */
  latencies: number[];
  /** Receive − the round's actual publish start, per message (sorted). */
  fromPublish: number[];
  /** Messages received over the measured rounds per second of server CPU: its µs per message. */
  serverMicrosPerMessage: number;
  /** The server's own lateness starting a round, and its time to publish one. */
  lagMs: Percentiles;
  publishMs: Percentiles;
  cpu: CpuUse;
  /** Clients that had been closed before the run ended (must be 0). */
  closedEarly: number;
}

/** Options of {@linkcode runBroadcast}. */
export interface BroadcastOptions {
  rounds: number;
  warmup: number;
  intervalMs: number;
  /** How long after the trigger's answer the messages may take to arrive. */
  drainMs?: number;
}

/** Asks `server`'s trigger for a run of rounds and tallies what `pool` receives. */
export async function runBroadcast(
  server: BenchServer,
  pool: ClientPool,
  options: BroadcastOptions,
): Promise<BroadcastRun> {
  const total = options.warmup + options.rounds;
  const allIn = pool.startRun(total, options.warmup);
  const closedBefore = pool.closedEarly;
  const before = sampleCpu(server.pid);
  const res = await fetch(`${server.ready.trigger}/rounds`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ rounds: total, interval_ms: options.intervalMs }),
  });
  if (!res.ok) {
    throw new Error(`Cannot run rounds on ${pool.label}: ${res.status} ${await res.text()}`);
  }
  const answer = await res.json() as RoundsAnswer;
  await within(allIn, options.drainMs ?? DRAIN_MS, "every message").catch(() => {});
  const cpu = cpuBetween(before, sampleCpu(server.pid));
  if (server.exited) {
    throw new Error(
      `The ${pool.label} server died during the run; its output:\n${server.output()}`,
    );
  }
  const tally = pool.tally!;
  pool.tally = undefined;
  return {
    label: pool.label,
    clients: pool.sockets.length,
    rounds: options.rounds,
    warmup: options.warmup,
    expected: pool.sockets.length * options.rounds,
    received: tally.received - Math.min(tally.received, pool.sockets.length * options.warmup),
    missing: tally.missing,
    duplicates: tally.duplicates,
    latencyMs: percentiles(tally.latencies),
    latencies: tally.latencies,
    fromPublish: tally.fromPublish,
    serverMicrosPerMessage: (cpu.serverSeconds / Math.max(1, tally.received)) * 1e6,
    lagMs: percentiles(answer.lag_ms.slice(options.warmup)),
    publishMs: percentiles(answer.publish_ms.slice(options.warmup)),
    cpu,
    closedEarly: pool.closedEarly - closedBefore,
  };
}

/** Connects `clients` clients to a `hub` server, 10 per user token, the real way. */
export async function connectHub(server: BenchServer, clients: number): Promise<ClientPool> {
  const tokens = JSON.parse(await Deno.readTextFile(String(server.ready.tokens_file))) as string[];
  if (tokens.length * PER_USER < clients) {
    throw new Error(
      `Cannot connect ${clients} clients to the hub: ${tokens.length} users allow ${
        tokens.length * PER_USER
      }`,
    );
  }
  const url = `${server.url.replace(/^http/, "ws")}${WS_PATH}`;
  return await ClientPool.connect(
    "hub",
    clients,
    () => url,
    (i) => ["trendedge.v1", `bearer.${tokens[Math.floor(i / PER_USER)]}`],
  );
}

/** Connects `clients` clients to a `ws-floor` server, in groups of 10 like the hub's users. */
export async function connectFloor(server: BenchServer, clients: number): Promise<ClientPool> {
  const base = `${server.url.replace(/^http/, "ws")}/ws`;
  return await ClientPool.connect(
    "floor",
    clients,
    (i) => `${base}?g=${Math.floor(i / PER_USER)}`,
    () => ["trendedge.v1", "bearer.floor"],
  );
}

/** Starts the two servers: the WebSocket floor and the runtime with `users` bench users. */
export async function spawnBroadcastServers(
  users: number,
): Promise<{ floor: BenchServer; hub: BenchServer }> {
  const floor = await spawnServer("ws-floor");
  try {
    const hub = await spawnServer("hub", {
      hubUsers: users,
      appConfig: { LOG_LEVEL: "warning", RATE_LIMIT_PER_MINUTE: "1000000" },
    });
    return { floor, hub };
  } catch (error) {
    await floor.stop();
    throw error;
  }
}

const HEADER = [
  "server",
  "clients",
  "recv/expected",
  "missing",
  "p50",
  "p90",
  "p99",
  "p99 range",
  "max",
  "from pub p99",
  "srv lag p99",
  "publish p99",
  "srv µs/msg",
  "srv CPU",
  "client CPU",
  "rest CPU",
];

/** Every message of the runs in one distribution, with the per-run p99 range beside it. */
function row(label: string, runs: BroadcastRun[]): string[] {
  const all = pooled(runs);
  const p99s = runs.map((r) => r.latencyMs.p99);
  return [
    label,
    String(runs[0]?.clients ?? 0),
    `${runs.reduce((a, r) => a + r.received, 0)}/${runs.reduce((a, r) => a + r.expected, 0)}`,
    String(runs.reduce((a, r) => a + r.missing + r.duplicates, 0)),
    ms(all.p50),
    ms(all.p90),
    ms(all.p99),
    `${ms(Math.min(...p99s))}–${ms(Math.max(...p99s))}`,
    ms(all.max),
    ms(pooled(runs, "fromPublish").p99),
    ms(Math.max(...runs.map((r) => r.lagMs.p99))),
    ms(Math.max(...runs.map((r) => r.publishMs.p99))),
    median(runs.map((r) => r.serverMicrosPerMessage)).toFixed(1),
    percent(median(runs.map((r) => r.cpu.server))),
    percent(median(runs.map((r) => r.cpu.client))),
    percent(median(runs.map((r) => r.cpu.rest))),
  ];
}

/** Runs the bench and writes its table. */
export async function bench(): Promise<void> {
  const users = Math.ceil(CLIENTS / PER_USER);
  const limit = openFilesLimit();
  const needed = 2 * CLIENTS + 200;
  if (limit !== undefined && limit < needed) {
    throw new Error(
      `Cannot hold ${2 * CLIENTS} WebSockets: the open-files limit is ${limit}; raise it with ` +
        `"ulimit -n ${needed}" (or more) before the bench`,
    );
  }
  const spawned = performance.now();
  const { floor, hub } = await spawnBroadcastServers(users);
  let floorPool: ClientPool | undefined;
  let hubPool: ClientPool | undefined;
  try {
    progress(
      `ws-floor and hub (postgres, ${users} users) up in ${ms(performance.now() - spawned)} ms`,
    );
    let t = performance.now();
    floorPool = await connectFloor(floor, CLIENTS);
    const floorConnectMs = performance.now() - t;
    t = performance.now();
    hubPool = await connectHub(hub, CLIENTS);
    const hubConnectMs = performance.now() - t;
    progress(
      `${CLIENTS} clients each: floor connected in ${ms(floorConnectMs)} ms, hub in ${
        ms(hubConnectMs)
      } ms`,
    );
    const runs = { floor: [] as BroadcastRun[], hub: [] as BroadcastRun[] };
    const options = { rounds: ROUNDS, warmup: WARMUP_ROUNDS, intervalMs: INTERVAL_MS };
    for (let rep = 0; rep < REPS; rep++) {
      for (
        const [label, server, pool] of [["floor", floor, floorPool], ["hub", hub, hubPool]] as const
      ) {
        const run = await runBroadcast(server, pool, options);
        runs[label].push(run);
        progress(
          `${label} run ${rep + 1}/${REPS}: p99 ${
            ms(run.latencyMs.p99)
          } ms, missing ${run.missing}`,
        );
      }
    }

    writeLine(
      `Event publish → WebSocket client receive, ${CLIENTS} clients: the hub (runtime on PostgreSQL, /api/v1/ws) vs bare Deno.serve + upgradeWebSocket (floor)`,
    );
    writeLine(
      `  ${users} users × ${PER_USER} connections (the hub's limit), bearer token in Sec-WebSocket-Protocol, all channels;`,
    );
    writeLine(
      `  a round = one event per user (${CLIENTS} messages), every ${INTERVAL_MS} ms open loop; ${REPS} interleaved runs of ${ROUNDS} rounds`,
    );
    writeLine(
      `  per side after ${WARMUP_ROUNDS} discarded; latency in ms from the round's scheduled time to each client's onmessage,`,
    );
    writeLine(
      "  over every message of every run (p99 range: per run); missing = messages never received or received twice (must be 0);",
    );
    writeLine(
      "  from pub = from the round's actual publish start instead (the server's late starts left out); srv lag = the server",
    );
    writeLine(
      "  starting a round late (charged to latency); publish = its time to publish a round (hub: onto the EventBus, floor: every",
    );
    writeLine(
      "  send); srv µs/msg = server CPU per message delivered; CPU in cores during the runs; rest = other processes: high = noisy",
    );
    writeTable(HEADER, [row("floor", runs.floor), row("hub", runs.hub)]);
    const floorP99 = pooledP99(runs.floor);
    const hubP99 = pooledP99(runs.hub);
    const r = hubP99 / floorP99;
    const missing = [...runs.floor, ...runs.hub].reduce(
      (a, run) => a + run.missing + run.duplicates,
      0,
    );
    const closedEarly = [...runs.floor, ...runs.hub].reduce((a, run) => a + run.closedEarly, 0);
    writeLine(
      `  hub÷floor p99: ${ratio(r)} (target ≤ ×${TARGET_P99_RATIO}: ${
        r <= TARGET_P99_RATIO ? "PASS" : "FAIL"
      }); p50: ${
        ratio(pooled(runs.hub).p50 / pooled(runs.floor).p50)
      }; missing messages: ${missing} (${missing === 0 ? "PASS" : "FAIL"})` +
        (closedEarly > 0 ? `; ${closedEarly} clients closed during the runs` : ""),
    );
    writeLine(
      `  from the actual publish: hub÷floor p99 ${
        ratio(pooled(runs.hub, "fromPublish").p99 / pooled(runs.floor, "fromPublish").p99)
      }; server CPU per message: ${
        ratio(
          median(runs.hub.map((r) => r.serverMicrosPerMessage)) /
            median(runs.floor.map((r) => r.serverMicrosPerMessage)),
        )
      }`,
    );
    const rest = median([...runs.floor, ...runs.hub].map((run) => run.cpu.rest));
    if (rest >= REST_BUSY) {
      writeLine(
        `  note: other processes kept ${
          percent(rest)
        } of a core busy during the runs (this machine has ${navigator.hardwareConcurrency}): ` +
          "the tails measure the scheduler more than the servers; compare the CPU per message, and rerun when quiet",
      );
    }
  } finally {
    await floorPool?.close();
    await hubPool?.close();
    await floor.stop();
    await hub.stop();
  }
}

function pooled(
  runs: BroadcastRun[],
  of: "latencies" | "fromPublish" = "latencies",
): Percentiles {
  return percentiles(runs.flatMap((r) => r[of]));
}

function pooledP99(runs: BroadcastRun[]): number {
  return pooled(runs).p99;
}

if (import.meta.main) {
  const { runStandalone } = await import("./_spawn.ts");
  await runStandalone(bench);
}
