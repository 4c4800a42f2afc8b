/**
 * Historical bars from Alpaca's market data API through the SDK (v4). The SDK's
 * `MarketDataClient` has no base URL option (it always calls data.alpaca.markets or the
 * sandbox), so this builds the generated `marketData.StockApi` on a `marketData.Configuration`
 * whose `basePath` is ALPACA_DATA_URL: tests and staging point it at a local server. Pages are
 * followed through `next_page_token`, one page at a time so callers can store as they go.
 */
import { ApiError, FetchError, marketData } from "@alpacahq/alpaca-trade-api";
import type { Bar, Timeframe } from "../db/bars.ts";
import { parseDecimal } from "./bar_input.ts";

/** Alpaca's timeframe for each of ours. */
export const ALPACA_TIMEFRAMES: Readonly<Record<Timeframe, string>> = {
  "1m": "1Min",
  "5m": "5Min",
  "15m": "15Min",
  "30m": "30Min",
  "1h": "1Hour",
  "2h": "2Hour",
  "4h": "4Hour",
  "1d": "1Day",
  "1w": "1Week",
};

/** Bars per page asked of Alpaca (its maximum). */
const PAGE_LIMIT = 10_000;

/** Options of {@linkcode createAlpacaData}. */
export interface AlpacaDataOptions {
  keyId: string;
  secretKey: string;
  /** ALPACA_DATA_URL. */
  baseUrl: string;
  /** Per request; default 15 s. */
  timeoutMs?: number;
  /** Retries of a 429 or 5xx (default 2), honouring Retry-After. */
  maxRetries?: number;
  /** First retry delay (default 500 ms, doubling). */
  retryDelayMs?: number;
}

/** What {@linkcode AlpacaData.bars} fetches. */
export interface BarsRequest {
  symbol: string;
  timeframe: Timeframe;
  from: Date;
  /** Exclusive; Alpaca's default (now, or 15 minutes ago on the free feed) when absent. */
  to?: Date;
}

/** Alpaca market data. */
export interface AlpacaData {
  /** The bars of `request`, one page at a time, oldest first. */
  bars(request: BarsRequest): AsyncGenerator<Bar[]>;
}

/** A market data request Alpaca refused or did not answer; the message says which. */
export class AlpacaDataError extends Error {
  override name = "AlpacaDataError";
  /** The HTTP status, when Alpaca answered. */
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

/** A market data client on `options.baseUrl`. */
export function createAlpacaData(options: AlpacaDataOptions): AlpacaData {
  const config = new marketData.Configuration({
    basePath: options.baseUrl.replace(/\/+$/, ""),
    keyId: options.keyId,
    secret: options.secretKey,
    timeoutMs: options.timeoutMs ?? 15_000,
    retry: {
      maxRetries: options.maxRetries ?? 2,
      retryDelayMs: options.retryDelayMs ?? 500,
      retryableStatuses: [429, 500, 502, 503, 504],
      respectRetryAfter: true,
    },
  });
  const stocks = new marketData.StockApi(config);
  const secret = options.secretKey;

  return {
    async *bars(request) {
      const what = `Cannot fetch ${request.timeframe} bars of "${request.symbol}" from Alpaca`;
      let pageToken: string | undefined;
      const seen = new Set<string>();
      for (;;) {
        let page: Awaited<ReturnType<typeof stocks.stockBarSingle>>;
        try {
          page = await stocks.stockBarSingle({
            symbol: request.symbol,
            timeframe: ALPACA_TIMEFRAMES[request.timeframe],
            start: request.from,
            end: request.to,
            limit: PAGE_LIMIT,
            adjustment: "raw",
            sort: "asc",
            pageToken,
          });
        } catch (error) {
          throw describe(error, what, secret);
        }
        yield (page.bars ?? []).map((b, i) => toBar(b, i, what));
        const next = page.nextPageToken ?? undefined;
        if (!next) return;
        if (seen.has(next)) throw new AlpacaDataError(`${what}: the page token "${next}" repeats`);
        seen.add(next);
        pageToken = next;
      }
    },
  };
}

function toBar(
  b: { t: Date; o: unknown; h: unknown; l: unknown; c: unknown; v: unknown },
  index: number,
  what: string,
): Bar {
  const open = parseDecimal(b.o), high = parseDecimal(b.h), low = parseDecimal(b.l);
  const close = parseDecimal(b.c), volume = parseDecimal(b.v);
  if (
    !(b.t instanceof Date) || Number.isNaN(b.t.getTime()) || open === null || high === null ||
    low === null || close === null || volume === null
  ) {
    throw new AlpacaDataError(`${what}: bar ${index} of a page is malformed`);
  }
  return { ts: b.t, open, high, low, close, volume };
}

function describe(error: unknown, what: string, secret: string): AlpacaDataError {
  if (error instanceof ApiError) {
    const status = error.status;
    let detail = error.message || `HTTP ${status}`;
    if (status === 401 || status === 403) {
      detail = `the API keys were refused (${status}); check the account's key id and secret`;
    } else if (status === 429) {
      detail = `rate limited (429) after retries; try again later`;
    } else if (status >= 500) {
      detail = `Alpaca is unavailable (${status}) after retries`;
    } else {
      detail = `${status}: ${detail}`;
    }
    return new AlpacaDataError(`${what}: ${detail.replaceAll(secret, "***")}`, status);
  }
  if (error instanceof FetchError) {
    return new AlpacaDataError(`${what}: no answer: ${error.message.replaceAll(secret, "***")}`);
  }
  return new AlpacaDataError(
    `${what}: ${(error as Error).message ?? String(error)}`.replaceAll(secret, "***"),
  );
}
