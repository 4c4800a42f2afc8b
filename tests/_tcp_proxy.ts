/**
 * A TCP proxy on loopback that a test can cut and restore, to take a dependency "down" without
 * stopping the shared server other tests use.
 */

/** A running proxy. */
export interface TcpProxy extends AsyncDisposable {
  port: number;
  /** Drops every open connection and refuses new ones. */
  cut(): void;
  /** Accepts connections again. */
  restore(): void;
}

/** Starts a proxy from a random loopback port to `target`. */
export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  let down = false;
  const pumps = new Set<Promise<void>>();

  function track(p: Promise<void>) {
    pumps.add(p);
    p.finally(() => pumps.delete(p));
  }

  async function pipe(from: Deno.Conn, to: Deno.Conn) {
    try {
      await from.readable.pipeTo(to.writable);
    } catch {
      // a cut or a peer closing ends the pipe
    } finally {
      closeQuietly(from);
      closeQuietly(to);
    }
  }

  function closeQuietly(conn: Deno.Conn) {
    if (!open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // already closed
    }
  }

  const accepting = (async () => {
    for await (const client of listener) {
      if (down) {
        client.close();
        continue;
      }
      open.add(client);
      track((async () => {
        let upstream: Deno.Conn;
        try {
          upstream = await Deno.connect(target);
        } catch {
          closeQuietly(client);
          return;
        }
        open.add(upstream);
        await Promise.all([pipe(client, upstream), pipe(upstream, client)]);
      })());
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    cut() {
      down = true;
      for (const conn of [...open]) closeQuietly(conn);
    },
    restore() {
      down = false;
    },
    async [Symbol.asyncDispose]() {
      down = true;
      listener.close();
      for (const conn of [...open]) closeQuietly(conn);
      await accepting.catch(() => {});
      await Promise.allSettled([...pumps]);
    },
  };
}
