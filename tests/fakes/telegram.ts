/**
 * A local fake of Telegram's Bot API `sendMessage`, speaking its real answers: `{"ok":true,
 * "result":{…}}`, 429 with `parameters.retry_after`, 5xx, and 400/401 error bodies. Tests queue
 * faults that the next requests answer with, and await the messages it records.
 */
import { Events } from "../../db/_queue_contract.ts";

/** A message the fake accepted or refused. */
export interface TelegramRequest {
  token: string;
  chatId: string;
  text: string;
  status: number;
}

/** The answer of one upcoming request. */
export type TelegramFault =
  | { status: 429; retryAfter: number }
  | { status: 500 | 502 | 503 }
  | { status: 400; description?: string }
  | { status: 401 };

/** A running fake. */
export interface FakeTelegram extends AsyncDisposable {
  url: string;
  /** Every request, in arrival order, as it happens. */
  requests: Events<TelegramRequest>;
  /** The next requests answer with these, in order. */
  faults: TelegramFault[];
}

/** Starts the fake on a free port of 127.0.0.1. */
export function startFakeTelegram(): FakeTelegram {
  const requests = new Events<TelegramRequest>();
  const faults: TelegramFault[] = [];
  let nextId = 1;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const getMe = /^\/bot([^/]+)\/getMe$/.exec(new URL(req.url).pathname);
    if (getMe) {
      await req.body?.cancel();
      // Telegram's answer to a revoked or mistyped token; here, any token containing "bad".
      if (getMe[1]!.includes("bad")) {
        return Response.json({ ok: false, error_code: 401, description: "Unauthorized" }, {
          status: 401,
        });
      }
      return Response.json({
        ok: true,
        result: { id: 1, is_bot: true, first_name: "trendedge", username: "trendedge_bot" },
      });
    }
    const match = /^\/bot([^/]+)\/sendMessage$/.exec(new URL(req.url).pathname);
    if (req.method !== "POST" || !match) {
      await req.body?.cancel();
      return Response.json({ ok: false, error_code: 404, description: "Not Found" }, {
        status: 404,
      });
    }
    const body = await req.json() as { chat_id?: unknown; text?: unknown };
    const fault = faults.shift();
    const status = fault?.status ?? 200;
    requests.push({
      token: decodeURIComponent(match[1]!),
      chatId: String(body.chat_id),
      text: String(body.text),
      status,
    });
    switch (fault?.status) {
      case undefined:
        return Response.json({
          ok: true,
          result: {
            message_id: nextId++,
            chat: { id: Number(body.chat_id), type: "private" },
            date: Math.floor(Date.now() / 1000),
            text: body.text,
          },
        });
      case 429:
        return Response.json({
          ok: false,
          error_code: 429,
          description: `Too Many Requests: retry after ${fault.retryAfter}`,
          parameters: { retry_after: fault.retryAfter },
        }, { status: 429 });
      case 400:
        return Response.json({
          ok: false,
          error_code: 400,
          description: fault.description ?? "Bad Request: chat not found",
        }, { status: 400 });
      case 401:
        return Response.json({ ok: false, error_code: 401, description: "Unauthorized" }, {
          status: 401,
        });
      default:
        return new Response("<html><body>Bad Gateway</body></html>", {
          status,
          headers: { "content-type": "text/html" },
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
