/**
 * A local Sentry ingest: accepts envelopes at `/api/<project>/envelope/` as sentry.io does, and
 * keeps the events in them. Point a DSN of `http://<key>@127.0.0.1:<port>/<project>` at it.
 */

/** A Sentry event as it arrives in an envelope. */
// deno-lint-ignore no-explicit-any
export type SentryEvent = Record<string, any>;

/** A running sink. */
export interface SentrySink extends AsyncDisposable {
  /** A DSN that sends here. */
  readonly dsn: string;
  /** Events received so far. */
  readonly events: SentryEvent[];
  /** Raw envelope bodies received so far. */
  readonly envelopes: string[];
  /** Resolves with the first event `match` accepts (already received or yet to come). */
  waitFor(match: (event: SentryEvent) => boolean, timeoutMs?: number): Promise<SentryEvent>;
  close(): Promise<void>;
}

/** Starts the sink on a free loopback port. */
export function startSentrySink(project = "42"): SentrySink {
  const events: SentryEvent[] = [];
  const envelopes: string[] = [];
  const waiters = new Set<
    { match: (e: SentryEvent) => boolean; resolve: (e: SentryEvent) => void }
  >();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method !== "POST" || url.pathname !== `/api/${project}/envelope/`) {
      return new Response("not found", { status: 404 });
    }
    let body = new Uint8Array(await req.arrayBuffer());
    if (req.headers.get("content-encoding") === "gzip") {
      body = new Uint8Array(
        await new Response(new Blob([body]).stream().pipeThrough(new DecompressionStream("gzip")))
          .arrayBuffer(),
      );
    }
    const text = new TextDecoder().decode(body);
    envelopes.push(text);
    // header \n (item header \n payload \n)*
    const lines = text.split("\n");
    for (let i = 1; i + 1 < lines.length; i += 2) {
      const itemHeader = JSON.parse(lines[i]!);
      if (itemHeader.type !== "event") continue;
      const event = JSON.parse(lines[i + 1]!);
      events.push(event);
      for (const w of waiters) {
        if (w.match(event)) {
          waiters.delete(w);
          w.resolve(event);
        }
      }
    }
    return Response.json({ id: crypto.randomUUID().replaceAll("-", "") });
  });
  const port = server.addr.port;
  return {
    dsn: `http://publickey@127.0.0.1:${port}/${project}`,
    events,
    envelopes,
    waitFor(match, timeoutMs = 10_000) {
      const found = events.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = {
          match,
          resolve: (e: SentryEvent) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching Sentry event within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    close: () => server.shutdown(),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
