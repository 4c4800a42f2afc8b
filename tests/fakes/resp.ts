/**
 * A small RESP2 client for tests: one TCP connection to a real redis-server, commands pipelined
 * in order, replies matched to commands first in, first out.
 */

/** An error reply (`-ERR …`) from Redis; a value, not a throw, so arrays can hold it. */
export class RespError extends Error {
  override name = "RespError";
}

/** A decoded RESP2 reply: simple and bulk strings as text, integers as numbers, nil as null. */
export type RespValue = string | number | null | RespError | RespValue[];

/** A connection to Redis. */
export interface RespConnection extends AsyncDisposable {
  /** Sends one command and resolves with its reply (error replies resolve as {@linkcode RespError}). */
  send(args: readonly string[]): Promise<RespValue>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLF = encoder.encode("\r\n");

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly string[]): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = encoder.encode(arg);
    parts.push(encoder.encode(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Thrown inside the decoder when the buffer ends before the reply does. */
const INCOMPLETE = Symbol("incomplete");

/**
 * Decodes one reply from `buf` at `pos`; returns it and the position after it, or undefined
 * when `buf` does not hold a whole reply yet.
 */
export function decodeReply(
  buf: Uint8Array,
  pos = 0,
): { value: RespValue; next: number } | undefined {
  try {
    return read(pos);
  } catch (e) {
    if (e === INCOMPLETE) return undefined;
    throw e;
  }

  function line(from: number): { text: string; next: number } {
    for (let i = from; i + 1 < buf.length; i++) {
      if (buf[i] === 13 && buf[i + 1] === 10) {
        return { text: decoder.decode(buf.subarray(from, i)), next: i + 2 };
      }
    }
    throw INCOMPLETE;
  }

  function read(at: number): { value: RespValue; next: number } {
    if (at >= buf.length) throw INCOMPLETE;
    const type = String.fromCharCode(buf[at]!);
    const { text, next } = line(at + 1);
    switch (type) {
      case "+":
        return { value: text, next };
      case "-":
        return { value: new RespError(text), next };
      case ":":
        return { value: Number(text), next };
      case "$": {
        const len = Number(text);
        if (len < 0) return { value: null, next };
        if (next + len + 2 > buf.length) throw INCOMPLETE;
        return { value: decoder.decode(buf.subarray(next, next + len)), next: next + len + 2 };
      }
      case "*": {
        const count = Number(text);
        if (count < 0) return { value: null, next };
        const items: RespValue[] = [];
        let cursor = next;
        for (let i = 0; i < count; i++) {
          const item = read(cursor);
          items.push(item.value);
          cursor = item.next;
        }
        return { value: items, next: cursor };
      }
      default:
        throw new Error(`Cannot decode a Redis reply: unknown type byte "${type}"`);
    }
  }
}

/** Opens a connection and selects database `db`. */
export async function connectResp(
  options: { hostname?: string; port?: number; db?: number } = {},
): Promise<RespConnection> {
  const conn = await Deno.connect({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 6379,
  });
  const pending: { resolve: (v: RespValue) => void; reject: (e: unknown) => void }[] = [];
  let writing = Promise.resolve();
  let closed = false;

  const reading = (async () => {
    let buf = new Uint8Array(0);
    let failure: unknown = new Error("Cannot read from Redis: the connection closed");
    try {
      for await (const chunk of conn.readable) {
        const joined = new Uint8Array(buf.length + chunk.length);
        joined.set(buf);
        joined.set(chunk, buf.length);
        buf = joined;
        let pos = 0;
        for (;;) {
          const reply = decodeReply(buf, pos);
          if (!reply) break;
          pos = reply.next;
          pending.shift()?.resolve(reply.value);
        }
        buf = buf.slice(pos);
      }
    } catch (e) {
      failure = e;
    }
    for (const p of pending.splice(0)) p.reject(failure);
  })();

  const connection: RespConnection = {
    send(args) {
      if (closed) {
        return Promise.reject(new Error("Cannot send to Redis: the connection is closed"));
      }
      const reply = new Promise<RespValue>((resolve, reject) => pending.push({ resolve, reject }));
      const bytes = encodeCommand(args);
      writing = writing.then(async () => {
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
      });
      return writing.then(() => reply, (e) => {
        reply.catch(() => {}); // the reader rejects it too when the connection ends
        throw e;
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await writing.catch(() => {});
      conn.close();
      await reading;
    },
    [Symbol.asyncDispose]() {
      return connection.close();
    },
  };
  if (options.db !== undefined) {
    const selected = await connection.send(["SELECT", String(options.db)]);
    if (selected instanceof RespError) {
      await connection.close();
      throw new Error(`Cannot select Redis database ${options.db}: ${selected.message}`);
    }
  }
  return connection;
}
