/** Test helpers for the WebSocket hub: a client that queues what it receives, and a log to await. */
import { createLogger, type LogFields, type Logger } from "../lib/log.ts";

/** A message from the server, parsed. */
// deno-lint-ignore no-explicit-any
export type WsMessage = Record<string, any>;

/** Rejects with `what` when `promise` has not settled within `ms`; never leaves a timer behind. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode TestClient.connect}. */
export interface TestClientOptions {
  /** The token, sent as the `bearer.<token>` subprotocol next to `trendedge.v1`. */
  token?: string;
  /** Subprotocols to offer instead. */
  protocols?: string[];
  /** Extra request headers (Deno's WebSocket extension): Cookie, Origin. */
  headers?: Record<string, string>;
  /** Answer every `ping` with a `pong` (default true). */
  autoPong?: boolean;
}

/** A WebSocket client that queues every message and the close, for tests to await in order. */
export class TestClient {
  readonly socket: WebSocket;
  readonly closed: Promise<CloseEvent>;
  #messages: WsMessage[] = [];
  #waiting: ((message: WsMessage) => void) | undefined;
  /** Every message received, pings included. */
  readonly received: WsMessage[] = [];

  private constructor(socket: WebSocket, autoPong: boolean) {
    this.socket = socket;
    const { promise, resolve } = Promise.withResolvers<CloseEvent>();
    this.closed = promise;
    socket.onclose = (event) => resolve(event);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data as string) as WsMessage;
      this.received.push(message);
      if (message.type === "ping" && autoPong) socket.send(JSON.stringify({ type: "pong" }));
      const waiting = this.#waiting;
      this.#waiting = undefined;
      if (waiting) waiting(message);
      else this.#messages.push(message);
    };
  }

  /** Opens a connection; rejects when the server refuses it. */
  static async connect(url: string, options: TestClientOptions = {}): Promise<TestClient> {
    const protocols = options.protocols ??
      (options.token === undefined ? [] : ["trendedge.v1", `bearer.${options.token}`]);
    const socket = options.headers
      // deno-lint-ignore no-explicit-any
      ? new (WebSocket as any)(url, { protocols, headers: options.headers }) as WebSocket
      : new WebSocket(url, protocols);
    const client = new TestClient(socket, options.autoPong ?? true);
    const opened = new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = (event) =>
        reject(new Error(`Cannot connect: ${(event as ErrorEvent).message ?? "refused"}`));
    });
    try {
      await within(opened, 10_000, "the connection to open");
    } catch (error) {
      await within(client.closed, 10_000, "the refused connection to close");
      throw error;
    }
    return client;
  }

  /** The next message (pings included). */
  next(ms = 10_000): Promise<WsMessage> {
    const queued = this.#messages.shift();
    if (queued) return Promise.resolve(queued);
    const message = new Promise<WsMessage>((resolve) => this.#waiting = resolve);
    return within(message, ms, "a message").finally(() => this.#waiting = undefined);
  }

  /** The next message that is not a `ping`. */
  async nextNotPing(ms = 10_000): Promise<WsMessage> {
    for (;;) {
      const message = await this.next(ms);
      if (message.type !== "ping") return message;
    }
  }

  /** The next message of `type`, skipping others. */
  async nextOf(type: string, ms = 10_000): Promise<WsMessage> {
    for (;;) {
      const message = await this.next(ms);
      if (message.type === type) return message;
    }
  }

  /** Messages received and not yet taken. */
  get queued(): number {
    return this.#messages.length;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Closes from this side and waits until closed. */
  async close(): Promise<CloseEvent> {
    if (this.socket.readyState < WebSocket.CLOSING) this.socket.close(1000);
    return await within(this.closed, 10_000, "the close");
  }

  /** Waits for the server to close the connection. */
  waitClosed(ms = 10_000): Promise<CloseEvent> {
    return within(this.closed, ms, "the server to close the connection");
  }
}

/** A logger whose lines tests can await. */
export function watchedLogger(): {
  log: Logger;
  lines: LogFields[];
  /** The first line from index `from` on (default 0) that matches, waiting for it if needed. */
  waitFor(
    what: string,
    match: (line: LogFields) => boolean,
    options?: { from?: number; ms?: number },
  ): Promise<LogFields>;
} {
  const lines: LogFields[] = [];
  const waiters: { match: (line: LogFields) => boolean; resolve: (line: LogFields) => void }[] = [];
  const log = createLogger("test", {
    level: "debug",
    sink: (text) => {
      const line = JSON.parse(text) as LogFields;
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (!waiter.match(line)) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    },
  });
  return {
    log,
    lines,
    waitFor(what, match, options = {}) {
      const seen = lines.slice(options.from ?? 0).find(match);
      if (seen) return Promise.resolve(seen);
      return within(
        new Promise((resolve) => waiters.push({ match, resolve })),
        options.ms ?? 10_000,
        what,
      );
    },
  };
}

/** Reads a raw WebSocket connection (server frames are never masked). */
export class FrameReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The HTTP response head of the handshake. */
  async head(): Promise<string> {
    for (;;) {
      const text = new TextDecoder().decode(this.#buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#buffer = this.#buffer.subarray(end + 4);
        return text.slice(0, end);
      }
      await this.#fill();
    }
  }

  /** Skips data frames up to the close frame; its code and reason. */
  async closeFrame(): Promise<{ code: number; reason: string }> {
    for (;;) {
      const frame = await this.#frame();
      if (frame.opcode === 8) {
        const view = new DataView(frame.payload.buffer, frame.payload.byteOffset);
        return {
          code: view.getUint16(0),
          reason: new TextDecoder().decode(frame.payload.subarray(2)),
        };
      }
    }
  }

  async #frame(): Promise<{ opcode: number; payload: Uint8Array }> {
    await this.#need(2);
    const opcode = this.#buffer[0]! & 0x0f;
    let length = this.#buffer[1]! & 0x7f;
    let offset = 2;
    if (length === 126) {
      await this.#need(4);
      length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getUint16(2);
      offset = 4;
    } else if (length === 127) {
      await this.#need(10);
      length = Number(
        new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getBigUint64(2),
      );
      offset = 10;
    }
    await this.#need(offset + length);
    const payload = this.#buffer.slice(offset, offset + length);
    this.#buffer = this.#buffer.subarray(offset + length);
    return { opcode, payload };
  }

  async #need(bytes: number) {
    while (this.#buffer.length < bytes) await this.#fill();
  }

  async #fill() {
    const chunk = new Uint8Array(256 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("Cannot read the connection: it ended");
    const joined = new Uint8Array(this.#buffer.length + n);
    joined.set(this.#buffer);
    joined.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = joined;
  }
}

/** A hand-made upgrade request on a raw connection (to read the 101 head, or never read). */
export async function rawUpgrade(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ conn: Deno.Conn; frames: FrameReader; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    await conn.write(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
    const frames = new FrameReader(conn);
    return { conn, frames, head: await frames.head() };
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** The request headers of a WebSocket upgrade, for a plain `fetch` that expects a refusal. */
export function upgradeHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...extra,
  };
}
