/**
 * A local fake of Discord's execute-webhook endpoint (`POST /api/webhooks/{id}/{token}`), with
 * its real answers: 204 (or 200 and the message with `?wait=true`), 429 with a JSON
 * `retry_after` in float seconds and a `Retry-After` header, 404 Unknown Webhook, and 5xx.
 */
import { Events } from "../../db/_queue_contract.ts";

/** A message the fake accepted or refused. */
export interface DiscordRequest {
  webhookId: string;
  token: string;
  content: string;
  status: number;
}

/** The answer of one upcoming request. */
export type DiscordFault =
  | { status: 429; retryAfter: number }
  | { status: 404 }
  | { status: 500 | 502 | 503 };

/** A running fake. */
export interface FakeDiscord extends AsyncDisposable {
  url: string;
  requests: Events<DiscordRequest>;
  /** The next requests answer with these, in order. */
  faults: DiscordFault[];
}

/** Starts the fake on a free port of 127.0.0.1. */
export function startFakeDiscord(): FakeDiscord {
  const requests = new Events<DiscordRequest>();
  const faults: DiscordFault[] = [];
  let nextId = 1000;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const match = /^\/api\/webhooks\/(\d+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && match) {
      // Discord's webhook object; a token containing "bad" is refused as Discord does.
      if (match[2]!.includes("bad")) {
        return Response.json({ message: "Invalid Webhook Token", code: 50027 }, { status: 401 });
      }
      return Response.json({ id: match[1], type: 1, name: "trendedge", channel_id: "1" });
    }
    if (req.method !== "POST" || !match) {
      await req.body?.cancel();
      return Response.json({ message: "404: Not Found", code: 0 }, { status: 404 });
    }
    const body = await req.json() as { content?: unknown };
    const fault = faults.shift();
    const status = fault?.status ?? (url.searchParams.get("wait") === "true" ? 200 : 204);
    requests.push({
      webhookId: match[1]!,
      token: match[2]!,
      content: String(body.content),
      status,
    });
    switch (fault?.status) {
      case undefined:
        return status === 204 ? new Response(null, { status: 204 }) : Response.json({
          id: String(nextId++),
          type: 0,
          content: body.content,
          channel_id: "1",
          webhook_id: match[1],
        });
      case 429:
        return Response.json(
          { message: "You are being rate limited.", retry_after: fault.retryAfter, global: false },
          { status: 429, headers: { "retry-after": String(Math.ceil(fault.retryAfter)) } },
        );
      case 404:
        return Response.json({ message: "Unknown Webhook", code: 10015 }, { status: 404 });
      default:
        return Response.json({ message: "Internal Server Error", code: 0 }, {
          status,
        });
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    faults,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
