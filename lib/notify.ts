/**
 * Notifications: the text of each event type (plain text, no markup to escape), Discord webhook
 * URL validation, and one send to Telegram's Bot API or a Discord webhook, classified so the
 * notifier knows whether a retry can help. Secrets (bot tokens, webhook URLs) never appear in
 * the errors this module returns: a network error's message names the URL, so it is replaced.
 */
import type { PipelineEvent } from "./events.ts";

/** Telegram takes 4096 characters, Discord 2000: every text is cut to the smaller. */
export const MAX_TEXT_LENGTH = 2_000;

/** The event types a channel can ask for; `trendline.alert` comes from the scanner. */
export const NOTIFY_EVENT_TYPES = [
  "trade.created",
  "trade.updated",
  "trade.closed",
  "signal.rejected",
  "breaker.opened",
  "breaker.closed",
  "position.mismatch",
  "trendline.alert",
  "webhook_key.expiring",
  "summary.daily",
] as const;

/** The event type of the daily summary (sent once a day, not published on the bus). */
export const DAILY_SUMMARY_EVENT = "summary.daily";

/** An event type a channel can ask for. */
export type NotifyEventType = typeof NOTIFY_EVENT_TYPES[number];

function str(value: unknown, fallback = "?"): string {
  if (value === undefined || value === null || value === "") return fallback;
  return String(value);
}

/**
 * The text sent for `event`, or undefined when the event type is not notified.
 *
 * @example
 * renderEvent({ type: "trade.updated", userId, at, data: { symbol: "AAPL", side: "buy",
 *   quantity: "10", status: "filled", filledQuantity: "10", averageFillPrice: "187.5" } });
 * // "✅ Filled: BUY 10 AAPL @ 187.5 …"
 */
export function renderEvent(
  event: Pick<PipelineEvent, "type" | "data" | "at">,
): string | undefined {
  const d = event.data ?? {};
  const type = event.type as string;
  let text: string | undefined;
  switch (type) {
    case "trade.created":
      text = `📨 Order placed: ${str(d.side).toUpperCase()} ${str(d.quantity)} ${str(d.symbol)}` +
        ` (${str(d.broker, "broker")}, ${str(d.status, "new")})`;
      break;
    case "trade.updated": {
      const status = str(d.status);
      const filled = status === "filled" || status === "partially_filled";
      text = filled
        ? `${status === "filled" ? "✅ Filled" : "◐ Partially filled"}: ${
          str(d.side).toUpperCase()
        } ${str(d.filledQuantity ?? d.quantity)} ${str(d.symbol)} @ ${str(d.averageFillPrice)}`
        : `🔄 Order ${status}: ${str(d.side).toUpperCase()} ${str(d.quantity)} ${str(d.symbol)}`;
      break;
    }
    case "trade.closed":
      text = `🏁 Position closed: ${str(d.symbol)}, realized P&L ${str(d.realizedPnl)}`;
      break;
    case "signal.rejected":
      text = `⛔ Signal rejected${d.symbol ? ` (${str(d.symbol)})` : ""}: ${str(d.reason)}`;
      break;
    case "breaker.opened":
      text = `🚨 Circuit breaker OPEN for account "${
        str(d.alias)
      }": signals are refused until it closes`;
      break;
    case "breaker.closed":
      text = `🟢 Circuit breaker closed for account "${str(d.alias)}": trading resumed`;
      break;
    case "position.mismatch":
      text = `⚠️ Position differs at the broker for account "${str(d.alias)}": ${
        str(d.symbol)
      } is ${str(d.atBroker)} there and ${
        str(d.recorded)
      } in trendedge. Trades made outside trendedge are not tracked, and signals act on trendedge's record`;
      break;
    case "trendline.alert":
      text = `📈 Trendline ${str(d.alertType ?? d.alert_type ?? d.type, "alert")}: ${
        str(d.symbol)
      } ${str(d.timeframe, "")} ${str(d.kind, "")} at ${str(d.price)}`.replace(/ {2,}/g, " ");
      break;
    case "webhook_key.expiring":
      text = `🔑 Webhook key "${str(d.name ?? d.prefix, "key")}" expires ${
        str(d.expiresAt ?? d.expires_at, "soon")
      }`;
      break;
    default:
      return undefined;
  }
  return truncate(text);
}

/** One account's line of a daily summary; `accountId` null for signals that reached no account. */
export interface SummaryLine {
  accountId: string | null;
  alias: string | null;
  signalsReceived: number;
  signalsRejected: number;
  ordersFilled: number;
  /** Exact decimal text. */
  realizedPnl: string;
  openPositions: number;
}

/**
 * The daily summary of one user: a heading with the UTC date, then one line per account.
 *
 * @example
 * renderDailySummary(new Date("2026-11-21T00:00:00Z"), [{ accountId: "…", alias: "paper",
 *   signalsReceived: 3, signalsRejected: 1, ordersFilled: 2, realizedPnl: "12.50",
 *   openPositions: 1 }]);
 * // "📊 Daily summary 2026-11-21 (UTC)\n• paper: 3 signals (1 rejected), 2 orders filled, …"
 */
export function renderDailySummary(day: Date, lines: readonly SummaryLine[]): string {
  const heading = `📊 Daily summary ${day.toISOString().slice(0, 10)} (UTC)`;
  const body = lines.map((l) =>
    l.accountId === null
      ? `• no account: ${l.signalsReceived} signals (${l.signalsRejected} rejected)`
      : `• ${l.alias}: ${l.signalsReceived} signals (${l.signalsRejected} rejected), ` +
        `${l.ordersFilled} orders filled, realized P&L ${l.realizedPnl}, ` +
        `${l.openPositions} open positions`
  );
  return truncate([heading, ...body].join("\n"));
}

/** Cuts `text` to {@linkcode MAX_TEXT_LENGTH} characters. */
export function truncate(text: string): string {
  return text.length > MAX_TEXT_LENGTH ? `${text.slice(0, MAX_TEXT_LENGTH - 1)}…` : text;
}

const DISCORD_HOSTS = ["discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com"];

/**
 * Checks a Discord webhook URL: only `https://discord.com/api/webhooks/{id}/{token}` (or
 * discordapp.com), so a stored URL can never make the server call anywhere else. Returns the
 * normalized URL, or throws a `TypeError` that does not quote the token.
 */
export function validateDiscordWebhookUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError("Cannot use the Discord webhook URL: it is not a URL");
  }
  const match = /^\/api(?:\/v\d+)?\/webhooks\/(\d{1,25})\/([A-Za-z0-9_-]{1,100})\/?$/.exec(
    url.pathname,
  );
  if (
    url.protocol !== "https:" || !DISCORD_HOSTS.includes(url.hostname) || url.port !== "" ||
    url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "" || !match
  ) {
    throw new TypeError(
      "Cannot use the Discord webhook URL: it must look like https://discord.com/api/webhooks/{id}/{token}",
    );
  }
  return `https://discord.com/api/webhooks/${match[1]}/${match[2]}`;
}

/** Where a notification goes, secrets in clear. */
export type NotifyTarget =
  | { kind: "telegram"; token: string; chatId: string }
  | { kind: "discord"; webhookUrl: string };

/** How one send went. */
export type SendOutcome =
  | { ok: true }
  | {
    ok: false;
    /** True when a later attempt may succeed (network, 5xx, 429). */
    retryable: boolean;
    /** The wait the service asked for (429), in ms. */
    retryAfterMs?: number;
    /** What went wrong; never contains the token or the webhook URL. */
    error: string;
  };

/** Options of {@linkcode sendNotification}. */
export interface SendOptions {
  /** Telegram's Bot API base (default https://api.telegram.org). */
  telegramApiUrl?: string;
  /** Replaces the origin of Discord webhook URLs (tests and staging point it at a local server). */
  discordApiUrl?: string;
  fetch?: typeof fetch;
  /** Per request (default 10 s). */
  timeoutMs?: number;
}

/** Sends `text` to `target` once and classifies the answer; never throws. */
export async function sendNotification(
  target: NotifyTarget,
  text: string,
  options: SendOptions = {},
): Promise<SendOutcome> {
  const doFetch = options.fetch ?? fetch;
  const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  let url: string;
  let body: unknown;
  if (target.kind === "telegram") {
    const base = (options.telegramApiUrl ?? "https://api.telegram.org").replace(/\/+$/, "");
    url = `${base}/bot${target.token}/sendMessage`;
    body = { chat_id: target.chatId, text, disable_web_page_preview: true };
  } else {
    const stored = new URL(validateDiscordWebhookUrl(target.webhookUrl));
    const base = (options.discordApiUrl ?? stored.origin).replace(/\/+$/, "");
    url = `${base}${stored.pathname}`;
    body = { content: text, allowed_mentions: { parse: [] } };
  }
  let response: Response;
  try {
    response = await doFetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === "TimeoutError";
    return {
      ok: false,
      retryable: true,
      error: `Cannot reach ${target.kind === "telegram" ? "Telegram" : "Discord"}: ${
        timedOut ? "timed out" : "network error"
      }`,
    };
  }
  const raw = await response.text().catch(() => "");
  if (response.ok) return { ok: true };
  let json: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(raw);
    if (parsed && typeof parsed === "object") json = parsed as Record<string, unknown>;
  } catch { /* not JSON: the status says enough */ }
  const service = target.kind === "telegram" ? "Telegram" : "Discord";
  const description = String(json.description ?? json.message ?? response.statusText ?? "")
    .slice(0, 300);
  const error = `Cannot send to ${service}: ${response.status}${
    description ? ` ${description}` : ""
  }`;
  if (response.status === 429) {
    return {
      ok: false,
      retryable: true,
      retryAfterMs: retryAfterMs(target, json, response),
      error,
    };
  }
  return { ok: false, retryable: response.status >= 500 || response.status === 408, error };
}

function retryAfterMs(
  target: NotifyTarget,
  json: Record<string, unknown>,
  response: Response,
): number | undefined {
  // Telegram: parameters.retry_after in whole seconds; Discord: retry_after in (float) seconds.
  const fromBody = target.kind === "telegram"
    ? (json.parameters as Record<string, unknown> | undefined)?.retry_after
    : json.retry_after;
  const seconds = Number(fromBody ?? response.headers.get("retry-after") ?? NaN);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds * 1000) : undefined;
}

/**
 * Checks that `target` exists without sending anything: Telegram's `getMe` for the bot token,
 * a `GET` of the Discord webhook. `ok: false` with `retryable: false` means the token or webhook
 * is refused (fix the configuration); `retryable: true` means the service could not be reached.
 */
export async function probeNotificationTarget(
  target: NotifyTarget,
  options: SendOptions = {},
): Promise<SendOutcome> {
  const doFetch = options.fetch ?? fetch;
  const service = target.kind === "telegram" ? "Telegram" : "Discord";
  let url: string;
  if (target.kind === "telegram") {
    const base = (options.telegramApiUrl ?? "https://api.telegram.org").replace(/\/+$/, "");
    url = `${base}/bot${target.token}/getMe`;
  } else {
    const stored = new URL(validateDiscordWebhookUrl(target.webhookUrl));
    url = `${(options.discordApiUrl ?? stored.origin).replace(/\/+$/, "")}${stored.pathname}`;
  }
  let response: Response;
  try {
    response = await doFetch(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 5_000) });
  } catch {
    return { ok: false, retryable: true, error: `Cannot reach ${service}` };
  }
  await response.body?.cancel();
  if (response.ok) return { ok: true };
  const refused = response.status === 401 || response.status === 403 || response.status === 404;
  return {
    ok: false,
    retryable: !refused,
    error: refused
      ? `${service} refused the ${
        target.kind === "telegram" ? "bot token" : "webhook"
      } (${response.status})`
      : `${service} answered ${response.status}`,
  };
}
