/**
 * A fake Alpaca market data API on loopback, speaking the real `/v2/stocks/{symbol}/bars` JSON
 * (`{"bars":[{"t","o","h","l","c","v","n","vw"}],"symbol","next_page_token"}`, errors as
 * `{"message"}`), so tests run the real SDK against it: pages of `pageSize` bars, API keys
 * checked (403 otherwise), and injected error statuses.
 *
 * @example
 * await using data = startFakeAlpacaData({ keyId: "K", secretKey: "S", pageSize: 2 });
 * data.setBars("AAPL", "1Day", bars);
 * data.faults.push({ status: 429, times: 1 });
 */

/** A bar as Alpaca serializes it. */
export interface AlpacaBarJson {
  t: string;
  o: number;
  h: number;
  l: number;
  c: number;
  v: number;
  n: number;
  vw: number;
}

/** An error status answered to the next `times` requests (default once). */
export interface DataFault {
  status: number;
  times?: number;
}

/** A running fake. */
export interface FakeAlpacaData extends AsyncDisposable {
  /** Its base URL, for ALPACA_DATA_URL. */
  url: string;
  /** Queued faults, applied in order. */
  faults: DataFault[];
  /** Every request's path and query, in order. */
  requests: URL[];
  /** Sets the bars of `symbol` on Alpaca timeframe `timeframe` (e.g. "1Day"). */
  setBars(symbol: string, timeframe: string, bars: AlpacaBarJson[]): void;
}

/** Starts the fake; `await using` stops it. */
export function startFakeAlpacaData(
  options: { keyId: string; secretKey: string; pageSize?: number },
): FakeAlpacaData {
  const pageSize = options.pageSize ?? 1000;
  const store = new Map<string, AlpacaBarJson[]>();
  const faults: DataFault[] = [];
  const requests: URL[] = [];
  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    Response.json(body, { status, headers });

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const url = new URL(request.url);
    requests.push(url);
    const fault = faults[0];
    if (fault) {
      fault.times = (fault.times ?? 1) - 1;
      if (fault.times <= 0) faults.shift();
      return json({ message: `fake fault ${fault.status}` }, fault.status, {
        ...(fault.status === 429 ? { "retry-after": "0" } : {}),
      });
    }
    if (
      request.headers.get("apca-api-key-id") !== options.keyId ||
      request.headers.get("apca-api-secret-key") !== options.secretKey
    ) {
      return json({ message: "forbidden" }, 403);
    }
    const match = /^\/v2\/stocks\/([^/]+)\/bars$/.exec(url.pathname);
    if (request.method !== "GET" || !match) return json({ message: "not found" }, 404);
    const symbol = decodeURIComponent(match[1]!);
    const timeframe = url.searchParams.get("timeframe");
    if (!timeframe) return json({ message: "timeframe is required" }, 400);
    const start = url.searchParams.get("start");
    const end = url.searchParams.get("end");
    const all = (store.get(`${symbol}|${timeframe}`) ?? []).filter((b) =>
      (!start || b.t >= new Date(start).toISOString().replace(".000Z", "Z")) &&
      (!end || b.t < new Date(end).toISOString().replace(".000Z", "Z"))
    );
    const limit = Math.min(Number(url.searchParams.get("limit") ?? 1000), pageSize);
    const offset = Number(url.searchParams.get("page_token") ?? "0");
    const bars = all.slice(offset, offset + limit);
    const next = offset + limit < all.length ? String(offset + limit) : null;
    return json({ bars, symbol, next_page_token: next });
  });
  const address = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${address.port}`,
    faults,
    requests,
    setBars(symbol, timeframe, bars) {
      store.set(`${symbol}|${timeframe}`, [...bars].sort((a, b) => a.t.localeCompare(b.t)));
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
