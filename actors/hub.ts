/**
 * The WebSocket hub: it owns the dashboard's live connections and pushes each user the events of
 * the pipeline that are theirs, and only theirs.
 *
 * - Connections are counted per user: a slot is reserved before the HTTP upgrade (so the one too
 *   many is refused with a plain 429) and the socket is attached after it.
 * - Every event published on the bus (this instance's, and with CLUSTER=true the other
 *   instances' too) gets an id `<epoch>-<seq>`: `seq` grows by one per event in this incarnation
 *   of the hub, `epoch` names the incarnation, so an id from before a restart is never mistaken
 *   for a current one. The last events of each user are kept in a ring buffer; a client that
 *   reconnects with the last id it saw gets what it missed, in order, or `resync` when that is
 *   no longer possible (another epoch, or events already dropped from the buffer).
 * - Events go out by channel (`signals`, `trades`, `trendlines`, `system`); a client subscribes to
 *   the ones it wants (all by default).
 * - Heartbeat: a `ping` every interval; a client silent for two intervals is closed (4408).
 * - The connection's token is checked again every few minutes (session still live, token not
 *   expired); one that fails closes the connection (4401).
 * - A client that cannot keep up (its socket's unsent bytes pass a limit) is closed (4008)
 *   rather than buffered without bound or allowed to slow the others; it can reconnect and resume.
 *
 * The wire protocol is described in routes/ws.ts.
 */
import { z } from "zod";
import type { Clock } from "../lib/clock.ts";
import type { EventBus, PipelineEvent, PipelineEventType } from "../lib/events.ts";
import { serializeError } from "../lib/log.ts";
import type { ActorContext, ActorRef, Behavior, Reply } from "./actor.ts";

/** The channels a client can subscribe to. */
export const CHANNELS = ["signals", "trades", "trendlines", "system"] as const;
/** One channel. */
export type Channel = typeof CHANNELS[number];

/** Close codes the hub uses (4xxx: ours, after the HTTP status they resemble). */
export const CLOSE_CODES = {
  /** The server is stopping (or the hub restarting): reconnect and resume. */
  GOING_AWAY: 1001,
  /** A client message was larger than the hub reads. */
  MESSAGE_TOO_BIG: 1009,
  /** The hub had no slot for the socket (its reservation expired): try again. */
  TRY_AGAIN_LATER: 1013,
  /** The client could not keep up with its events: reconnect and resume. */
  SLOW_CONSUMER: 4008,
  /** The token expired or its session ended: authenticate again. */
  UNAUTHORIZED: 4401,
  /** The client did not answer the heartbeat. */
  HEARTBEAT_TIMEOUT: 4408,
} as const;

/** The channel of an event type. */
export function channelOf(type: PipelineEventType): Channel {
  switch (type) {
    case "signal.received":
    case "signal.rejected":
      return "signals";
    case "trade.created":
    case "trade.updated":
    case "trade.closed":
      return "trades";
    case "trendline.new":
    case "trendline.alert":
    case "trendline.retired":
    case "scan.complete":
      return "trendlines";
    case "breaker.opened":
    case "breaker.closed":
    case "position.mismatch":
    case "webhook_key.expiring":
      return "system";
    default: {
      // Another instance of a newer version may send types this one does not know yet.
      const unknown: never = type;
      return String(unknown).startsWith("trendline.") ? "trendlines" : "system";
    }
  }
}

/** Who a connection belongs to and what it authenticated with. */
export interface HubClient {
  userId: string;
  /** The token of the upgrade, checked again every `recheckMs`; never logged. */
  token: string;
  via: "bearer" | "cookie";
  /** Epoch ms when the token expires, when known: the connection closes then. */
  expiresAt?: number;
}

/** What {@linkcode HubCommand} `reserve` answers. */
export type Reservation = { ok: true; connId: string } | { ok: false; limit: number };

/** Counts for health checks and metrics. */
export interface HubStats {
  connections: number;
  users: number;
  /** Slots reserved for upgrades in progress. */
  reserved: number;
}

/** What the hub can be told. */
export type HubCommand =
  /** Reserves a connection slot for `userId` before the upgrade. */
  | { type: "reserve"; userId: string; reply: Reply<Reservation> }
  /** Gives back a slot whose upgrade failed. */
  | { type: "release"; connId: string }
  /**
   * Hands over the socket of a reserved slot (see {@linkcode attachSocket}). Not a plain
   * message: the hub owns the socket from now on. `resumeAfter` is the last event id the client
   * saw, when it sent one with the upgrade.
   */
  | {
    type: "attach";
    connId: string;
    socket: HubSocket;
    client: HubClient;
    resumeAfter?: string;
  }
  | { type: "stats"; reply: Reply<HubStats> }
  | SocketSignal
  | Internal;

/** What a socket's own events tell the hub. */
type SocketSignal =
  | { type: "opened"; connId: string }
  | { type: "received"; connId: string; data: unknown }
  | { type: "closed"; connId: string; code: number };

type Internal =
  | { type: "event"; event: PipelineEvent }
  | { type: "heartbeat" }
  | { type: "recheck" }
  /** `ok` null: the check itself failed (e.g. the database is down); it is tried again. */
  | { type: "checked"; connId: string; ok: boolean | null };

/** The part of a WebSocket the hub uses. */
export type HubSocket = Pick<WebSocket, "readyState" | "bufferedAmount" | "send" | "close">;

/** What the hub needs. */
export interface HubDeps {
  bus: EventBus;
  clock: Clock;
  /**
   * Checks a token again as at the upgrade: the user id it stands for, null when it is no longer
   * good (expired, session revoked); throws when the check could not be made.
   */
  authenticate(token: string, via: "bearer" | "cookie"): Promise<string | null>;
}

/** Options of {@linkcode hubBehavior}; the defaults are for production. */
export interface HubOptions {
  /** Connections one user may hold (default 10). */
  maxConnectionsPerUser?: number;
  /** Between pings (default 30 s); a client silent for twice this is closed. */
  heartbeatMs?: number;
  /** Between two checks of a connection's token (default 15 min). */
  recheckMs?: number;
  /** Recent events kept per user for resuming (default 1,000). */
  bufferSize?: number;
  /** Unsent bytes a socket may hold before its client is dropped as too slow (default 1 MiB). */
  maxBufferedBytes?: number;
  /** Messages held for a socket that is not open yet (default 1,000). */
  maxPending?: number;
  /** How long a reserved slot waits for its socket (default 10 s). */
  reservationMs?: number;
}

/** Client messages longer than this close the connection (1009). */
export const MAX_CLIENT_MESSAGE = 4096;

const OPEN = 1; // WebSocket.OPEN

const ChannelSchema = z.enum(CHANNELS);
const ClientMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("pong") }),
  z.object({ type: z.literal("ping") }),
  z.object({ type: z.literal("subscribe"), channels: z.array(ChannelSchema).max(16) }),
  z.object({ type: z.literal("resume"), after: z.string().max(64) }),
]);

interface Conn {
  id: string;
  client: HubClient;
  socket: HubSocket;
  channels: Set<Channel>;
  /** False until the socket's `open` event; messages wait in `pending` meanwhile. */
  open: boolean;
  pending: string[];
  /** Clock ms of the last message from the client (or of the attach). */
  lastSeen: number;
  /** Clock ms of the last successful token check (or of the attach). */
  checkedAt: number;
  checking: boolean;
  /** The first event sequence number delivered live; a resume replays only older ones. */
  liveFrom: number;
}

interface StoredEvent {
  seq: number;
  channel: Channel;
  text: string;
}

interface Ring {
  events: StoredEvent[];
  /** The highest sequence number dropped from this user's buffer (0: none). */
  dropped: number;
}

interface State {
  epoch: string;
  seq: number;
  nextConn: number;
  /** Slots reserved for upgrades in progress: conn id → user and when. */
  reserved: Map<string, { userId: string; at: number }>;
  conns: Map<string, Conn>;
  /** Conn ids (reserved or attached) by user. */
  byUser: Map<string, Set<string>>;
  rings: Map<string, Ring>;
  timers: ReturnType<typeof setInterval>[];
  unsubscribe: () => void;
}

/**
 * The hub behaviour. Run it with `createActor("hub", hubBehavior(deps, options), …)` under the
 * root supervisor; a restart starts a new epoch with empty buffers (clients resync).
 */
export function hubBehavior(deps: HubDeps, options: HubOptions = {}): Behavior<State, HubCommand> {
  const maxPerUser = options.maxConnectionsPerUser ?? 10;
  const heartbeatMs = options.heartbeatMs ?? 30_000;
  const recheckMs = options.recheckMs ?? 900_000;
  const bufferSize = options.bufferSize ?? 1_000;
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
  const maxPending = options.maxPending ?? 1_000;
  const reservationMs = options.reservationMs ?? 10_000;
  const settings = {
    maxPerUser,
    heartbeatMs,
    recheckMs,
    bufferSize,
    maxBufferedBytes,
    maxPending,
    reservationMs,
  };
  for (const [name, value] of Object.entries(settings)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(
        `Cannot create the hub: ${name} must be a positive integer, got "${value}"`,
      );
    }
  }
  const { clock } = deps;

  return {
    init(ctx) {
      const tell = (msg: HubCommand) => ctx.self.tell(msg).catch(() => {}); // stopping
      const state: State = {
        epoch: newEpoch(clock.now()),
        seq: 0,
        nextConn: 0,
        reserved: new Map(),
        conns: new Map(),
        byUser: new Map(),
        rings: new Map(),
        timers: [
          setInterval(() => tell({ type: "heartbeat" }), heartbeatMs),
          // Token checks are due per connection; looking every minute at most keeps the
          // expiry of a token enforced within a minute.
          setInterval(() => tell({ type: "recheck" }), Math.min(recheckMs, 60_000)),
        ],
        unsubscribe: deps.bus.subscribe((event) => tell({ type: "event", event })),
      };
      ctx.log.debug("Hub started", { epoch: state.epoch });
      return state;
    },

    receive(state, msg, ctx) {
      switch (msg.type) {
        case "reserve": {
          const ids = state.byUser.get(msg.userId);
          if (ids && ids.size >= maxPerUser) {
            msg.reply.ok({ ok: false, limit: maxPerUser });
            return state;
          }
          const connId = `${state.epoch}.${++state.nextConn}`;
          state.reserved.set(connId, { userId: msg.userId, at: clock.now() });
          userIds(state, msg.userId).add(connId);
          msg.reply.ok({ ok: true, connId });
          return state;
        }
        case "release": {
          const slot = state.reserved.get(msg.connId);
          if (slot) unreserve(state, msg.connId, slot.userId);
          return state;
        }
        case "attach": {
          attach(state, msg, ctx);
          return state;
        }
        case "opened": {
          const conn = state.conns.get(msg.connId);
          if (!conn) return state;
          conn.open = true;
          const pending = conn.pending;
          conn.pending = [];
          for (const text of pending) {
            if (!send(state, conn, text, ctx)) break;
          }
          return state;
        }
        case "received": {
          const conn = state.conns.get(msg.connId);
          if (conn) onClientMessage(state, conn, msg.data, ctx);
          return state;
        }
        case "closed": {
          const conn = state.conns.get(msg.connId);
          if (!conn) return state;
          forget(state, conn);
          ctx.log.debug("WebSocket closed by the client", {
            conn_id: conn.id,
            user_id: conn.client.userId,
            code: msg.code,
          });
          return state;
        }
        case "event": {
          publish(state, msg.event, ctx);
          return state;
        }
        case "heartbeat": {
          heartbeat(state, ctx);
          return state;
        }
        case "recheck": {
          recheck(state, ctx);
          return state;
        }
        case "checked": {
          const conn = state.conns.get(msg.connId);
          if (!conn) return state;
          conn.checking = false;
          if (msg.ok === true) conn.checkedAt = clock.now();
          else if (msg.ok === false) {
            drop(state, conn, CLOSE_CODES.UNAUTHORIZED, "session expired", ctx, "info");
          }
          return state;
        }
        case "stats": {
          msg.reply.ok({
            connections: state.conns.size,
            users: [...state.byUser.values()].filter((ids) => ids.size > 0).length,
            reserved: state.reserved.size,
          });
          return state;
        }
        default: {
          const never: never = msg;
          throw new Error(`Cannot handle hub message ${JSON.stringify(never)}`);
        }
      }
    },

    stop(state, ctx) {
      for (const timer of state.timers) clearInterval(timer);
      state.unsubscribe();
      for (const conn of state.conns.values()) {
        closeSocket(conn.socket, CLOSE_CODES.GOING_AWAY, "server shutting down");
      }
      if (state.conns.size > 0) {
        ctx.log.info("Closed the WebSocket connections", { count: state.conns.size });
      }
      state.conns.clear();
      state.reserved.clear();
      state.byUser.clear();
    },
  };

  function attach(
    state: State,
    msg: Extract<HubCommand, { type: "attach" }>,
    ctx: ActorContext<HubCommand>,
  ) {
    const slot = state.reserved.get(msg.connId);
    if (!slot || slot.userId !== msg.client.userId) {
      // Reserved too long ago (or by a previous incarnation of the hub).
      closeSocket(msg.socket, CLOSE_CODES.TRY_AGAIN_LATER, "try again");
      return;
    }
    state.reserved.delete(msg.connId);
    const now = clock.now();
    const conn: Conn = {
      id: msg.connId,
      client: msg.client,
      socket: msg.socket,
      channels: new Set(CHANNELS),
      open: false,
      pending: [],
      lastSeen: now,
      checkedAt: now,
      checking: false,
      liveFrom: state.seq + 1,
    };
    state.conns.set(conn.id, conn);
    ctx.log.debug("WebSocket connected", {
      conn_id: conn.id,
      user_id: conn.client.userId,
      via: conn.client.via,
    });
    // `last_id`: where to resume from should the connection drop before any event comes.
    const hello = {
      type: "hello",
      channels: CHANNELS,
      heartbeat_ms: heartbeatMs,
      last_id: `${state.epoch}-${state.seq}`,
    };
    send(state, conn, control(hello), ctx);
    if (msg.resumeAfter !== undefined) resume(state, conn, msg.resumeAfter, ctx);
  }

  function onClientMessage(
    state: State,
    conn: Conn,
    data: unknown,
    ctx: ActorContext<HubCommand>,
  ) {
    conn.lastSeen = clock.now();
    if (typeof data !== "string") {
      send(state, conn, error("Cannot read the message: send JSON text"), ctx);
      return;
    }
    if (data.length > MAX_CLIENT_MESSAGE) {
      drop(state, conn, CLOSE_CODES.MESSAGE_TOO_BIG, "message too big", ctx, "info");
      return;
    }
    let parsed;
    try {
      parsed = ClientMessage.safeParse(JSON.parse(data));
    } catch {
      send(state, conn, error("Cannot read the message: it is not JSON"), ctx);
      return;
    }
    if (!parsed.success) {
      send(
        state,
        conn,
        error(
          `Cannot read the message: expected {"type":"pong"|"ping"|"subscribe"|"resume"}; channels are ${
            CHANNELS.join(", ")
          }`,
        ),
        ctx,
      );
      return;
    }
    const message = parsed.data;
    switch (message.type) {
      case "pong":
        return;
      case "ping":
        send(state, conn, control({ type: "pong" }), ctx);
        return;
      case "subscribe":
        conn.channels = new Set(message.channels);
        send(state, conn, control({ type: "subscribed", channels: [...conn.channels] }), ctx);
        return;
      case "resume":
        resume(state, conn, message.after, ctx);
        return;
      default: {
        const never: never = message;
        throw new Error(`Cannot handle client message ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Sends `conn` the events of its user after `after` that it has not had live, then
   * `resumed`; or `resync` when they cannot all be told.
   */
  function resume(state: State, conn: Conn, after: string, ctx: ActorContext<HubCommand>) {
    const dash = after.lastIndexOf("-");
    const epoch = after.slice(0, dash);
    const seq = /^\d{1,15}$/.test(after.slice(dash + 1)) ? Number(after.slice(dash + 1)) : NaN;
    if (dash <= 0 || epoch !== state.epoch || !Number.isSafeInteger(seq) || seq > state.seq) {
      send(state, conn, control({ type: "resync", reason: "unknown event id" }), ctx);
      return;
    }
    const ring = state.rings.get(conn.client.userId);
    if (ring && seq < ring.dropped) {
      send(state, conn, control({ type: "resync", reason: "event id too old" }), ctx);
      return;
    }
    let count = 0;
    for (const event of ring?.events ?? []) {
      if (event.seq <= seq || event.seq >= conn.liveFrom) continue;
      if (!conn.channels.has(event.channel)) continue;
      if (!send(state, conn, event.text, ctx)) return;
      count++;
    }
    send(state, conn, control({ type: "resumed", after, count }), ctx);
  }

  /** Numbers the event, keeps it for resuming and sends it to its user's connections. */
  function publish(state: State, event: PipelineEvent, ctx: ActorContext<HubCommand>) {
    const channel = channelOf(event.type);
    const seq = state.seq + 1;
    let text: string;
    try {
      text = JSON.stringify({
        id: `${state.epoch}-${seq}`,
        channel,
        type: event.type,
        at: event.at,
        ...(event.accountId === undefined ? {} : { account_id: event.accountId }),
        ...(event.signalId === undefined ? {} : { signal_id: event.signalId }),
        ...(event.orderId === undefined ? {} : { order_id: event.orderId }),
        data: event.data,
      });
    } catch (error) {
      // A publisher's bug, not the hub's: the other events still go out.
      ctx.log.error("Cannot send an event that is not JSON", {
        event: event.type,
        error: serializeError(error),
      });
      return;
    }
    state.seq = seq;
    let ring = state.rings.get(event.userId);
    if (!ring) state.rings.set(event.userId, ring = { events: [], dropped: 0 });
    ring.events.push({ seq, channel, text });
    if (ring.events.length > bufferSize) ring.dropped = ring.events.shift()!.seq;
    const ids = state.byUser.get(event.userId);
    if (!ids) return;
    for (const id of ids) {
      const conn = state.conns.get(id);
      if (conn?.channels.has(channel)) send(state, conn, text, ctx);
    }
  }

  function heartbeat(state: State, ctx: ActorContext<HubCommand>) {
    const now = clock.now();
    for (const [connId, slot] of state.reserved) {
      if (now - slot.at >= reservationMs) unreserve(state, connId, slot.userId);
    }
    const ping = control({ type: "ping" });
    for (const conn of [...state.conns.values()]) {
      if (now - conn.lastSeen >= 2 * heartbeatMs) {
        drop(state, conn, CLOSE_CODES.HEARTBEAT_TIMEOUT, "heartbeat timeout", ctx, "info");
      } else if (conn.open) {
        send(state, conn, ping, ctx);
      }
    }
  }

  function recheck(state: State, ctx: ActorContext<HubCommand>) {
    const now = clock.now();
    for (const conn of [...state.conns.values()]) {
      if (conn.client.expiresAt !== undefined && conn.client.expiresAt <= now) {
        drop(state, conn, CLOSE_CODES.UNAUTHORIZED, "token expired", ctx, "info");
        continue;
      }
      if (conn.checking || now - conn.checkedAt < recheckMs) continue;
      conn.checking = true;
      const { id, client } = conn;
      // Off the actor's loop: a slow database must not hold the events back.
      deps.authenticate(client.token, client.via).then(
        (userId) => ({ type: "checked", connId: id, ok: userId === client.userId }) as const,
        (error) => {
          ctx.log.warning("Cannot check a WebSocket's token now; trying again later", {
            conn_id: id,
            user_id: client.userId,
            error: serializeError(error),
          });
          return { type: "checked", connId: id, ok: null } as const;
        },
      ).then((checked) => ctx.self.tell(checked)).catch(() => {});
    }
  }

  /** Sends `text`, or drops the client when its socket holds too much; false when dropped. */
  function send(state: State, conn: Conn, text: string, ctx: ActorContext<HubCommand>): boolean {
    if (!conn.open) {
      if (conn.pending.length >= maxPending) {
        drop(state, conn, CLOSE_CODES.SLOW_CONSUMER, "slow consumer", ctx, "warning");
        return false;
      }
      conn.pending.push(text);
      return true;
    }
    if (conn.socket.readyState !== OPEN) return true; // closing: its `closed` is on its way
    if (conn.socket.bufferedAmount > maxBufferedBytes) {
      drop(state, conn, CLOSE_CODES.SLOW_CONSUMER, "slow consumer", ctx, "warning");
      return false;
    }
    try {
      conn.socket.send(text);
    } catch {
      return true; // closed meanwhile: its `closed` is on its way
    }
    return true;
  }

  /** Closes a connection from this side and forgets it. */
  function drop(
    state: State,
    conn: Conn,
    code: number,
    reason: string,
    ctx: ActorContext<HubCommand>,
    level: "info" | "warning",
  ) {
    const buffered = conn.socket.bufferedAmount;
    forget(state, conn);
    closeSocket(conn.socket, code, reason);
    ctx.log[level]("Closed a WebSocket", {
      conn_id: conn.id,
      user_id: conn.client.userId,
      code,
      reason,
      buffered_bytes: buffered,
    });
  }
}

/**
 * Wires a freshly upgraded socket to the hub: its events become hub messages, and the socket is
 * handed over under the slot `connId` reserved for it. Call it right after
 * `Deno.upgradeWebSocket`, before returning the response.
 *
 * @example
 * const { response, socket } = Deno.upgradeWebSocket(request, { protocol: WS_PROTOCOL });
 * attachSocket(hub, socket, { connId, client });
 * return response;
 */
export function attachSocket(
  hub: ActorRef<HubCommand>,
  socket: WebSocket,
  options: { connId: string; client: HubClient; resumeAfter?: string },
): void {
  const { connId } = options;
  hub.tell({
    type: "attach",
    connId,
    socket,
    client: options.client,
    ...(options.resumeAfter === undefined ? {} : { resumeAfter: options.resumeAfter }),
  }).catch(() => {
    // The hub is stopping: nobody will serve this socket.
    socket.onopen = () => closeSocket(socket, CLOSE_CODES.GOING_AWAY, "server shutting down");
  });
  // Told after the attach, so the hub always knows the socket before its events.
  const tell = (msg: SocketSignal) => hub.tell(msg).catch(() => {});
  socket.onopen = () => tell({ type: "opened", connId });
  socket.onmessage = (event) => tell({ type: "received", connId, data: event.data });
  socket.onclose = (event) => tell({ type: "closed", connId, code: event.code });
  socket.onerror = () => {}; // a close event follows
}

function forget(state: State, conn: Conn) {
  state.conns.delete(conn.id);
  const ids = state.byUser.get(conn.client.userId);
  ids?.delete(conn.id);
  if (ids?.size === 0) state.byUser.delete(conn.client.userId);
}

function unreserve(state: State, connId: string, userId: string) {
  state.reserved.delete(connId);
  const ids = state.byUser.get(userId);
  ids?.delete(connId);
  if (ids?.size === 0) state.byUser.delete(userId);
}

function userIds(state: State, userId: string): Set<string> {
  let ids = state.byUser.get(userId);
  if (!ids) state.byUser.set(userId, ids = new Set());
  return ids;
}

function closeSocket(socket: HubSocket, code: number, reason: string) {
  try {
    socket.close(code, reason);
  } catch {
    // already closing or closed
  }
}

function control(message: Record<string, unknown>): string {
  return JSON.stringify(message);
}

function error(message: string): string {
  return control({ type: "error", message });
}

/** A new epoch: the start time and a random tail, in lowercase base 36 (never a dash). */
function newEpoch(now: number): string {
  const random = crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36).padStart(7, "0");
  return `${now.toString(36)}${random}`;
}
