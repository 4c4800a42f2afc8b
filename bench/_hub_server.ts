/**
 * The server side of the hub bench (bench/hub.ts), loaded by bench/_server.ts in its `hub` and
 * `ws-floor` modes: the bench-only trigger that publishes rounds of events, the users and
 * tokens the hub's clients authenticate with, and the WebSocket floor. Nothing here is product
 * code: the real runtime (`start()` from main.ts) gets no route or option for the bench; the
 * trigger is a second, tiny `Deno.serve` in the same process that calls the runtime's EventBus.
 *
 * A round is one event per user (group of sockets), all stamped with the round's scheduled
 * time: `sent_at`, wall-clock ms (`performance.timeOrigin + performance.now()`, comparable
 * across processes on one machine), and the time its publishing actually started
 * (`published_at`). Rounds are open loop: round i is due at `t0 + i ×
 * interval` whatever happened before, and a round that starts late is still stamped with its
 * due time, so a server that stalls is charged for it.
 */
import { uuidv7 } from "../lib/ids.ts";
import type { PipelineEvent } from "../lib/events.ts";
import type { Runtime } from "../main.ts";
import { accessTokenFor, insertTrader } from "../tests/_fixtures.ts";

/** What the trigger is asked: `POST /rounds` with this JSON body. */
export interface RoundsRequest {
  rounds: number;
  interval_ms: number;
}

/** What the trigger answers once every round is published. */
export interface RoundsAnswer {
  rounds: number;
  /** Per round: how late it started after its due time (the server's timer and loop), ms. */
  lag_ms: number[];
  /** Per round: how long publishing it took (the hub: onto the bus; the floor: every send), ms. */
  publish_ms: number[];
}

/** The subprotocol both servers answer with. */
export const WS_PROTOCOL = "trendedge.v1";
/** Most rounds one trigger call may ask for, and the longest interval (bounded runs). */
const MAX_ROUNDS = 10_000;
const MAX_INTERVAL_MS = 10_000;

/** Wall-clock ms with sub-millisecond precision, comparable between processes of one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The `data` of every bench event: the same fields for the hub and the floor. */
export function eventData(
  round: number,
  sentAt: number,
  publishedAt: number,
): Record<string, unknown> {
  return {
    round,
    sent_at: sentAt,
    published_at: publishedAt,
    symbol: "AAPL",
    action: "buy",
    quantity: 1,
    price: "190.12",
  };
}

/** Publishes `rounds` rounds, one every `intervalMs`, open loop; resolves when all are out. */
async function runRounds(
  request: RoundsRequest,
  publish: (round: number, sentAt: number, publishedAt: number) => void,
): Promise<RoundsAnswer> {
  const answer: RoundsAnswer = { rounds: request.rounds, lag_ms: [], publish_ms: [] };
  const t0 = performance.now() + 20;
  for (let round = 0; round < request.rounds; round++) {
    const due = t0 + round * request.interval_ms;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const started = performance.now();
    answer.lag_ms.push(Math.max(0, started - due));
    publish(round, performance.timeOrigin + due, performance.timeOrigin + started);
    answer.publish_ms.push(performance.now() - started);
  }
  return answer;
}

/**
 * Starts the trigger: `POST /rounds {"rounds", "interval_ms"}` publishes the rounds through
 * `publish` and answers {@linkcode RoundsAnswer}; one run at a time (409 otherwise).
 */
function startTrigger(
  publish: (round: number, sentAt: number, publishedAt: number) => void,
): Promise<{ url: string; stop(): Promise<void> }> {
  let busy = false;
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: listening.resolve },
    async (req) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/rounds") {
        return new Response("not found", { status: 404 });
      }
      const body = await req.json() as Partial<RoundsRequest>;
      const { rounds, interval_ms } = body;
      if (
        !Number.isSafeInteger(rounds) || rounds! < 1 || rounds! > MAX_ROUNDS ||
        typeof interval_ms !== "number" || !(interval_ms > 0) || interval_ms > MAX_INTERVAL_MS
      ) {
        return new Response(
          `Cannot run rounds: "rounds" must be 1–${MAX_ROUNDS} and "interval_ms" 0–${MAX_INTERVAL_MS}`,
          { status: 400 },
        );
      }
      if (busy) return new Response("Cannot run rounds: a run is in progress", { status: 409 });
      busy = true;
      try {
        return Response.json(await runRounds({ rounds: rounds!, interval_ms }, publish));
      } finally {
        busy = false;
      }
    },
  );
  return listening.promise.then((addr) => ({
    url: `http://${addr.hostname}:${addr.port}`,
    stop: () => server.shutdown(),
  }));
}

/**
 * The `hub` mode: creates `users` traders with a live session and an access token each (as
 * login would), writes the tokens to `<dataDir>/hub-tokens.json`, and starts the trigger,
 * which publishes one `signal.received` event per user per round on the runtime's real
 * EventBus (so the hub numbers, buffers and sends them as any event; `signal.received` is not
 * one the notifier sends on, so no notification work rides along).
 */
export async function addHubBench<T extends { url: string; stop(): Promise<boolean> }>(
  app: T & { runtime: Runtime },
  options: { users: number; dataDir: string },
): Promise<{ url: string; ready: Record<string, unknown>; stop(): Promise<boolean> }> {
  const { runtime } = app;
  if (!Number.isSafeInteger(options.users) || options.users < 1) {
    throw new RangeError(
      `Cannot start the hub bench: "BENCH_HUB_USERS" must be a positive integer, got "${options.users}"`,
    );
  }
  const userIds: string[] = [];
  const tokens: string[] = [];
  for (let u = 0; u < options.users; u++) {
    const trader = await insertTrader(runtime.db, { email: `hub-bench-${u}@example.com` });
    const { token } = await accessTokenFor(runtime.db, { id: trader.userId, role: "trader" }, {
      secret: runtime.config.jwtSecret,
      now: Date.now(),
    });
    userIds.push(trader.userId);
    tokens.push(token);
  }
  const tokensFile = `${options.dataDir}/hub-tokens.json`;
  await Deno.writeTextFile(tokensFile, JSON.stringify(tokens), { mode: 0o600 });

  const signalIds = userIds.map(() => uuidv7());
  const trigger = await startTrigger((round, sentAt, publishedAt) => {
    const at = new Date(sentAt).toISOString();
    for (const [u, userId] of userIds.entries()) {
      const event: PipelineEvent = {
        type: "signal.received",
        userId,
        signalId: signalIds[u]!,
        at,
        data: eventData(round, sentAt, publishedAt),
      };
      runtime.bus.publish(event);
    }
  });
  return {
    url: app.url,
    ready: { trigger: trigger.url, tokens_file: tokensFile, users: options.users },
    async stop() {
      await trigger.stop();
      return await app.stop();
    },
  };
}

/**
 * The `ws-floor` mode: a bare `Deno.serve` + `Deno.upgradeWebSocket` that keeps its sockets in
 * groups (`?g=<n>`, the bench's stand-in for a user) and, per round, builds one message per
 * group — the hub's event shape, one `JSON.stringify` — and sends it to every open socket of
 * that group. It answers `subscribe` with `subscribed` and `ping` with `pong`, like the hub.
 */
export async function startWsFloor(): Promise<
  { url: string; ready: Record<string, unknown>; stop(): Promise<boolean> }
> {
  const groups = new Map<number, Set<WebSocket>>();
  const epoch = Date.now().toString(36);
  let seq = 0;
  const signalIds = new Map<number, string>();
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: listening.resolve },
    (req) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("expected a WebSocket", { status: 400 });
      }
      const group = Number(new URL(req.url).searchParams.get("g") ?? "0");
      const { response, socket } = Deno.upgradeWebSocket(req, { protocol: WS_PROTOCOL });
      let sockets = groups.get(group);
      if (!sockets) groups.set(group, sockets = new Set());
      sockets.add(socket);
      if (!signalIds.has(group)) signalIds.set(group, uuidv7());
      socket.onmessage = (event) => {
        const type = typeof event.data === "string"
          ? (JSON.parse(event.data) as { type?: string; channels?: string[] }).type
          : undefined;
        if (type === "subscribe") {
          const { channels } = JSON.parse(event.data) as { channels: string[] };
          socket.send(JSON.stringify({ type: "subscribed", channels }));
        } else if (type === "ping") socket.send(JSON.stringify({ type: "pong" }));
      };
      socket.onclose = () => sockets.delete(socket);
      socket.onerror = () => {}; // a close event follows
      return response;
    },
  );
  const addr = await listening.promise;
  const trigger = await startTrigger((round, sentAt, publishedAt) => {
    const at = new Date(sentAt).toISOString();
    for (const [group, sockets] of groups) {
      const text = JSON.stringify({
        id: `${epoch}-${++seq}`,
        channel: "signals",
        type: "signal.received",
        at,
        signal_id: signalIds.get(group),
        data: eventData(round, sentAt, publishedAt),
      });
      for (const socket of sockets) {
        if (socket.readyState === WebSocket.OPEN) socket.send(text);
      }
    }
  });
  return {
    url: `http://${addr.hostname}:${addr.port}`,
    ready: { trigger: trigger.url },
    async stop() {
      await trigger.stop();
      for (const sockets of groups.values()) {
        for (const socket of sockets) {
          try {
            socket.close(1001, "server shutting down");
          } catch {
            // already closing
          }
        }
      }
      await server.shutdown();
      return true;
    },
  };
}
