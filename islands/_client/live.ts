/**
 * The dashboard's live connection: one WebSocket per page (`/api/v1/ws`, authenticated by the
 * session cookie), shared by every island on it. It reconnects after 1, 2, 4, 8, 16 and then
 * every 30 s, resuming from the last event it saw so nothing published meanwhile is missed; a
 * `resync` (the server restarted or the gap is too old) tells the islands to reload their state.
 * An expired session is renewed once, and the page goes to the login when that fails.
 */
import { refreshSession, toLogin } from "./api.ts";

/** An event as the hub sends it (see routes/ws.ts). */
export interface LiveEvent {
  id: string;
  channel: "signals" | "trades" | "trendlines" | "system";
  type: string;
  at: string;
  account_id?: string;
  signal_id?: string;
  order_id?: string;
  data: Record<string, unknown>;
}

/** Where the connection is. */
export type LiveStatus = "connecting" | "live" | "reconnecting" | "signed_out";

/** What an island hears. */
export interface LiveListener {
  event?(event: LiveEvent): void;
  /** Events were missed and cannot be replayed: reload from the API. */
  resync?(): void;
  status?(status: LiveStatus, retryInMs?: number): void;
}

/** The wait before reconnect attempt `attempt` (0-based): 1, 2, 4, 8, 16, 30, 30 … seconds. */
export function backoffMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
}

/** What the connection needs from the browser (replaced in tests). */
export interface LiveEnv {
  url: string;
  open(url: string): WebSocket;
  setTimeout(fn: () => void, ms: number): unknown;
  refresh(): Promise<boolean>;
  signedOut(): void;
}

const UNAUTHORIZED = 4401;
const SUBPROTOCOL = "trendedge.v1";

/** One reconnecting, resuming WebSocket and its listeners. */
export class LiveConnection {
  #env: LiveEnv;
  #listeners = new Set<LiveListener>();
  #socket: WebSocket | undefined;
  #lastId: string | undefined;
  #attempt = 0;
  #status: LiveStatus = "connecting";
  #stopped = false;

  constructor(env: LiveEnv) {
    this.#env = env;
  }

  /** The status now. */
  get status(): LiveStatus {
    return this.#status;
  }

  /** The id of the last event received (where a reconnect resumes). */
  get lastId(): string | undefined {
    return this.#lastId;
  }

  /** Adds a listener and connects on the first one; returns the unsubscribe function. */
  listen(listener: LiveListener): () => void {
    this.#listeners.add(listener);
    listener.status?.(this.#status);
    if (!this.#socket && !this.#stopped) this.#connect();
    return () => this.#listeners.delete(listener);
  }

  /** Closes the connection for good. */
  stop(): void {
    this.#stopped = true;
    this.#socket?.close(1000);
  }

  #emit(fn: (listener: LiveListener) => void) {
    for (const listener of this.#listeners) {
      try {
        fn(listener);
      } catch (error) {
        // deno-lint-ignore no-console
        console.error("live listener failed", error);
      }
    }
  }

  #setStatus(status: LiveStatus, retryInMs?: number) {
    this.#status = status;
    this.#emit((l) => l.status?.(status, retryInMs));
  }

  #connect() {
    const url = this.#lastId
      ? `${this.#env.url}?resume=${encodeURIComponent(this.#lastId)}`
      : this.#env.url;
    let socket: WebSocket;
    try {
      socket = this.#env.open(url);
    } catch {
      this.#retry();
      return;
    }
    this.#socket = socket;
    socket.onmessage = (message) => this.#receive(socket, message.data);
    socket.onclose = (close) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      if (this.#stopped) return;
      if (close.code === UNAUTHORIZED) void this.#reauthenticate();
      else this.#retry();
    };
  }

  #receive(socket: WebSocket, data: unknown) {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(String(data));
    } catch {
      return;
    }
    switch (message.type) {
      case "hello":
        this.#attempt = 0;
        if (!this.#lastId && typeof message.last_id === "string") this.#lastId = message.last_id;
        this.#setStatus("live");
        return;
      case "ping":
        socket.send(JSON.stringify({ type: "pong" }));
        return;
      case "resync":
        this.#lastId = undefined;
        this.#emit((l) => l.resync?.());
        return;
      default:
        if (typeof message.id === "string" && typeof message.channel === "string") {
          this.#lastId = message.id;
          const event = message as unknown as LiveEvent;
          this.#emit((l) => l.event?.(event));
        }
    }
  }

  #retry() {
    const wait = backoffMs(this.#attempt++);
    this.#setStatus("reconnecting", wait);
    this.#env.setTimeout(() => {
      if (!this.#stopped) this.#connect();
    }, wait);
  }

  async #reauthenticate() {
    if (await this.#env.refresh()) {
      this.#connect();
      return;
    }
    this.#stopped = true;
    this.#setStatus("signed_out");
    this.#env.signedOut();
  }
}

let shared: LiveConnection | undefined;

/** The page's connection, made on first use. */
export function liveConnection(): LiveConnection {
  shared ??= new LiveConnection({
    url: `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/api/v1/ws`,
    open: (url) => new WebSocket(url, [SUBPROTOCOL]),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    refresh: refreshSession,
    signedOut: toLogin,
  });
  return shared;
}
