/**
 * `/orders`: two views of what reached the broker — round-trip trades (`view=trades`, the default:
 * entry and exit, realized P&L, fees, R-multiple, with a summary over every matching trade) and
 * the orders themselves (`view=orders`) — filtered by a GET form and paged by cursor.
 * `/orders/:id`: one order with its status history and fills.
 */
import { Hono } from "hono";
import { EmptyState, PageHeader, Time } from "../../components/Layout.tsx";
import { listAccounts } from "../../db/accounts.ts";
import { getOrder, listOrders, listTrades, type TradeView } from "../../db/reads.ts";
import { tradeSummary } from "../../db/trade_stats.ts";
import { formatMoney, formatNumber, pnlClass } from "../../islands/_client/format.ts";
import type { AppEnv } from "../_env.ts";
import { notFoundPage, renderPage, userPage } from "./_page.tsx";
import { FilterForm, InputFilter, Pager, Problems, SelectFilter, StatusBadge } from "./_list.tsx";
import { MAX_PAGE_SIZE, QueryReader, withQuery } from "./_query.ts";

/** The statuses an order can have (db/migrations/0002). */
export const ORDER_STATUSES = [
  "new",
  "pending",
  "partially_filled",
  "filled",
  "canceled",
  "expired",
  "rejected",
] as const;
/** The statuses a trade can have. */
export const TRADE_STATUSES = ["open", "closed"] as const;
const VIEWS = ["trades", "orders"] as const;
const PAGE_SIZE = 50;

/** The orders & trades pages. */
export const ordersPage = new Hono<AppEnv>();

/**
 * The R-multiple of a trade: realized P&L over the risk taken, |entry − stop loss| × quantity;
 * null without a stop loss (or with a stop at the entry price).
 */
export function rMultiple(
  t: Pick<TradeView, "realized_pnl" | "entry_price" | "stop_loss" | "quantity">,
): number | null {
  if (t.stop_loss === null) return null;
  const risk = Math.abs(Number(t.entry_price) - Number(t.stop_loss)) * Number(t.quantity);
  const pnl = Number(t.realized_pnl);
  if (!Number.isFinite(risk) || risk === 0 || !Number.isFinite(pnl)) return null;
  return pnl / risk;
}

/** `1.50R`, `-0.75R`, or an em dash. */
export function formatR(r: number | null): string {
  if (r === null) return "—";
  return `${r.toFixed(2)}R`;
}

ordersPage.get(
  "/orders",
  userPage(async (c, { user, viewer }) => {
    const { db } = c.get("deps");
    const q = new QueryReader(c.req.url);
    const view = q.oneOf("view", "view", VIEWS) ?? "trades";
    const form = {
      status: q.text("status"),
      symbol: q.text("symbol"),
      account: q.text("account"),
    };
    const statuses: readonly string[] = view === "trades" ? TRADE_STATUSES : ORDER_STATUSES;
    const status = q.oneOf("status", `${view === "trades" ? "trade" : "order"} status`, statuses);
    const symbol = q.symbol();
    const account = q.account();
    const cursor = q.cursor();
    const limit = q.limit(MAX_PAGE_SIZE);
    const filtered = Object.values(form).some((v) => v !== undefined);
    const accounts = (await listAccounts(db, user.userId)).map((a) => a.alias);
    const keep = { view, ...form, limit: limit === undefined ? undefined : String(limit) };
    const tabs = (
      <nav class="tabs" aria-label="Orders and trades">
        {VIEWS.map((v) => (
          <a
            key={v}
            href={withQuery("/orders", { view: v, symbol: form.symbol, account: form.account })}
            aria-current={v === view ? "page" : undefined}
          >
            {v === "trades" ? "Trades" : "Orders"}
          </a>
        ))}
      </nav>
    );
    const filters = (
      <FilterForm action="/orders" hidden={{ view }} active={filtered}>
        <SelectFilter
          name="status"
          label="Status"
          value={form.status}
          any="Any status"
          options={statuses}
        />
        <InputFilter name="symbol" label="Symbol" value={form.symbol} placeholder="AAPL" />
        <SelectFilter
          name="account"
          label="Account"
          value={form.account}
          any="All accounts"
          options={accounts}
        />
      </FilterForm>
    );
    const header = (
      <PageHeader
        title="Orders & trades"
        lead={<>What reached your broker accounts. Times in {viewer.zone}.</>}
      />
    );
    const title = view === "trades" ? "Trades" : "Orders";
    if (q.problems.length > 0) {
      return renderPage(c, {
        title,
        active: "orders",
        viewer,
        status: 400,
        body: (
          <>
            {header}
            {tabs}
            <Problems problems={q.problems} />
            {filters}
            <p>
              <a href={withQuery("/orders", { view })}>Show all {view}</a>
            </p>
          </>
        ),
      });
    }
    const filter = { symbol, account, cursor, limit: limit ?? PAGE_SIZE };
    const body = view === "trades"
      ? await tradesView(c.get("deps").db, user.userId, {
        ...filter,
        status: status as "open" | "closed" | undefined,
      }, { zone: viewer.zone, filtered, keep })
      : await ordersView(c.get("deps").db, user.userId, { ...filter, status }, {
        zone: viewer.zone,
        filtered,
        keep,
      });
    return renderPage(c, {
      title,
      active: "orders",
      viewer,
      body: (
        <>
          {header}
          {tabs}
          {filters}
          {body}
        </>
      ),
    });
  }),
);

interface ViewOptions {
  zone: string;
  filtered: boolean;
  keep: Record<string, string | undefined>;
}

type Db = Parameters<typeof listTrades>[0];

function emptyList(
  what: "trades" | "orders",
  { filtered, keep }: ViewOptions,
  cursor: boolean,
) {
  if (cursor) {
    return (
      <EmptyState title={`No older ${what}`}>
        <p>
          <a href={withQuery("/orders", keep)}>Back to the newest</a>
        </p>
      </EmptyState>
    );
  }
  if (filtered) {
    return (
      <EmptyState title={`No ${what} match these filters`}>
        <p>
          <a href={withQuery("/orders", { view: keep.view })}>Clear the filters</a>
        </p>
      </EmptyState>
    );
  }
  return (
    <EmptyState title={`No ${what} yet`}>
      <p>
        {what === "trades"
          ? "A trade opens when a signal's order fills and closes when a later signal exits it. "
          : "An order is placed at your broker for every signal that passes your risk limits. "}
        <a href="/signals">See your signals</a>, or{" "}
        <a href="/settings#keys">create a webhook key</a> to connect TradingView.
      </p>
    </EmptyState>
  );
}

async function tradesView(
  db: Db,
  userId: string,
  filter: Parameters<typeof listTrades>[2] & object,
  options: ViewOptions,
) {
  const [page, summary] = await Promise.all([
    listTrades(db, userId, filter),
    tradeSummary(db, userId, {
      status: filter.status,
      symbol: filter.symbol,
      account: filter.account,
    }),
  ]);
  if (page.data.length === 0) return emptyList("trades", options, filter.cursor !== undefined);
  const winRate = summary.closed === 0
    ? "—"
    : `${Math.round((summary.wins / summary.closed) * 100)}%`;
  return (
    <section class="card" aria-labelledby="trades-title">
      <h2 id="trades-title" class="sr-only">Trades</h2>
      <p class="summary" data-summary="trades">
        <span>
          {`${summary.trades} ${summary.trades === 1 ? "trade" : "trades"}${
            options.filtered ? " matching the filters" : ""
          }`}
        </span>
        <span>
          {`Win rate ${winRate}`}
          <span class="muted">{`(${summary.wins} of ${summary.closed} closed)`}</span>
        </span>
        <span>
          Realized P&amp;L{" "}
          <strong class={pnlClass(summary.realized_pnl)}>
            {formatMoney(summary.realized_pnl)}
          </strong>
        </span>
        <span>{`Fees ${formatMoney(summary.fees)}`}</span>
      </p>
      <div class="table-wrap">
        <table class="table trades">
          <thead>
            <tr>
              <th scope="col">Opened</th>
              <th scope="col">Symbol</th>
              <th scope="col">Direction</th>
              <th scope="col" class="num">Qty</th>
              <th scope="col" class="num">Entry</th>
              <th scope="col" class="num">Exit</th>
              <th scope="col" class="num">Realized P&amp;L</th>
              <th scope="col" class="num">Fees</th>
              <th scope="col" class="num" title="Realized P&L / (|entry − stop loss| × qty)">
                R
              </th>
              <th scope="col">Closed</th>
              <th scope="col">Account</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((t) => (
              <tr key={t.id} data-trade={t.id}>
                <td>
                  {t.entry_signal_id
                    ? (
                      <a href={`/signals/${t.entry_signal_id}`} title="The signal that opened it">
                        <Time iso={t.opened_at} zone={options.zone} />
                      </a>
                    )
                    : <Time iso={t.opened_at} zone={options.zone} />}
                </td>
                <td>{t.symbol}</td>
                <td>{t.direction}</td>
                <td class="num">{formatNumber(t.quantity)}</td>
                <td class="num">{formatNumber(t.entry_price)}</td>
                <td class="num">{formatNumber(t.exit_price)}</td>
                <td class={`num ${pnlClass(t.realized_pnl)}`}>{formatMoney(t.realized_pnl)}</td>
                <td class="num">{formatMoney(t.fees)}</td>
                <td class="num" data-col="r">{formatR(rMultiple(t))}</td>
                <td>
                  <Time iso={t.closed_at} zone={options.zone} />
                </td>
                <td>{t.account}</td>
                <td>
                  <StatusBadge status={t.status === "open" ? "open" : "closed"} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        newest={filter.cursor ? withQuery("/orders", options.keep) : undefined}
        older={page.nextCursor
          ? withQuery("/orders", { ...options.keep, cursor: page.nextCursor })
          : undefined}
      />
    </section>
  );
}

async function ordersView(
  db: Db,
  userId: string,
  filter: Parameters<typeof listOrders>[2] & object,
  options: ViewOptions,
) {
  const page = await listOrders(db, userId, filter);
  if (page.data.length === 0) return emptyList("orders", options, filter.cursor !== undefined);
  return (
    <section class="card" aria-labelledby="orders-title">
      <h2 id="orders-title" class="sr-only">Orders</h2>
      <div class="table-wrap">
        <table class="table orders">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Symbol</th>
              <th scope="col">Side</th>
              <th scope="col" class="num">Qty</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col" class="num">Filled</th>
              <th scope="col" class="num">Avg fill</th>
              <th scope="col">Leg</th>
              <th scope="col">Account</th>
              <th scope="col">Broker order id</th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((o) => (
              <tr key={o.id} data-order={o.id}>
                <td>
                  <a href={`/orders/${o.id}`}>
                    <Time iso={o.created_at} zone={options.zone} />
                  </a>
                </td>
                <td>{o.symbol}</td>
                <td>{o.side}</td>
                <td class="num">{formatNumber(o.quantity)}</td>
                <td>{o.order_type.replace("_", " ")}</td>
                <td>
                  <StatusBadge status={o.status} />
                  {o.reason && <div class="reason">{o.reason}</div>}
                </td>
                <td class="num">{formatNumber(o.filled_quantity)}</td>
                <td class="num">{formatNumber(o.average_fill_price)}</td>
                <td>{o.leg.replace("_", " ")}</td>
                <td>{o.account}</td>
                <td>
                  {o.broker_order_id
                    ? <code class="small">{o.broker_order_id}</code>
                    : <span class="muted">—</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager
        newest={filter.cursor ? withQuery("/orders", options.keep) : undefined}
        older={page.nextCursor
          ? withQuery("/orders", { ...options.keep, cursor: page.nextCursor })
          : undefined}
      />
    </section>
  );
}

interface HistoryEntry {
  status: string;
  broker_status: string | null;
  at: string | null;
}

function history(value: unknown): HistoryEntry[] {
  if (!Array.isArray(value)) return [];
  return value.filter((e) => e && typeof e === "object").map((e) => {
    const entry = e as Record<string, unknown>;
    return {
      status: String(entry.status ?? ""),
      broker_status: entry.broker_status == null ? null : String(entry.broker_status),
      at: entry.at == null ? null : String(entry.at),
    };
  });
}

ordersPage.get(
  "/orders/:id",
  userPage(async (c, { user, viewer }) => {
    const { db } = c.get("deps");
    const order = await getOrder(db, user.userId, c.req.param("id") ?? "");
    if (!order) return notFoundPage(c, viewer);
    const o = order;
    const fields: Array<[string, string | null]> = [
      ["Account", o.account],
      ["Symbol", o.symbol],
      ["Side", o.side],
      ["Quantity", formatNumber(o.quantity)],
      ["Type", o.order_type.replace("_", " ")],
      ["Time in force", o.time_in_force],
      ["Limit price", o.limit_price === null ? null : formatNumber(o.limit_price)],
      ["Stop price", o.stop_price === null ? null : formatNumber(o.stop_price)],
      ["Leg", o.leg.replace("_", " ")],
      ["Filled", `${formatNumber(o.filled_quantity)} of ${formatNumber(o.quantity)}`],
      [
        "Average fill price",
        o.average_fill_price === null ? null : formatNumber(o.average_fill_price),
      ],
      ["Broker status", o.broker_status],
      ["Client order id", o.client_order_id],
      ["Broker order id", o.broker_order_id],
    ];
    const steps = history(o.status_history);
    const title = `${o.side} ${formatNumber(o.quantity)} ${o.symbol}`;
    return renderPage(c, {
      title: `Order ${title}`,
      active: "orders",
      viewer,
      body: (
        <>
          <p>
            <a href="/orders?view=orders">← All orders</a>
          </p>
          <PageHeader
            title={`Order: ${title}`}
            lead={
              <>
                <StatusBadge status={o.status} /> created{" "}
                <Time iso={o.created_at} zone={viewer.zone} />
                {o.signal_id && (
                  <>
                    {" "}from <a href={`/signals/${o.signal_id}`}>its signal</a>
                  </>
                )}
                {o.parent_id && (
                  <>
                    {" "}· leg of <a href={`/orders/${o.parent_id}`}>the entry order</a>
                  </>
                )}
              </>
            }
          />
          {o.reason && (
            <p class={`banner ${o.status === "rejected" ? "danger" : ""}`} role="status">
              <strong>Reason:</strong> {o.reason}
            </p>
          )}
          <div class="grid two">
            <section class="card" aria-labelledby="order-fields">
              <h2 id="order-fields">Order</h2>
              <dl class="fields">
                {fields.filter(([, v]) => v !== null && v !== "").map(([k, v]) => (
                  <div key={k}>
                    <dt>{k}</dt>
                    <dd>{k.endsWith("order id") ? <code>{v}</code> : v}</dd>
                  </div>
                ))}
                <div>
                  <dt>Updated</dt>
                  <dd>
                    <Time iso={o.updated_at} zone={viewer.zone} />
                  </dd>
                </div>
              </dl>
            </section>
            <section class="card" aria-labelledby="order-history">
              <h2 id="order-history">Status history</h2>
              {steps.length === 0
                ? <p class="empty-inline">No status changes recorded.</p>
                : (
                  <div class="table-wrap">
                    <table class="table">
                      <thead>
                        <tr>
                          <th scope="col">Time</th>
                          <th scope="col">Status</th>
                          <th scope="col">At the broker</th>
                        </tr>
                      </thead>
                      <tbody>
                        {steps.map((step, i) => (
                          <tr key={i}>
                            <td>
                              <Time iso={step.at} zone={viewer.zone} />
                            </td>
                            <td>
                              <StatusBadge status={step.status} />
                            </td>
                            <td>{step.broker_status ?? <span class="muted">—</span>}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                )}
            </section>
          </div>
          <section class="card" aria-labelledby="order-fills">
            <h2 id="order-fills">Fills</h2>
            {o.fills.length === 0
              ? <p class="empty-inline">Nothing filled yet.</p>
              : (
                <div class="table-wrap">
                  <table class="table">
                    <thead>
                      <tr>
                        <th scope="col">Time</th>
                        <th scope="col">Side</th>
                        <th scope="col" class="num">Qty</th>
                        <th scope="col" class="num">Price</th>
                        <th scope="col" class="num">Fee</th>
                        <th scope="col">Broker fill id</th>
                      </tr>
                    </thead>
                    <tbody>
                      {o.fills.map((f) => (
                        <tr key={f.id}>
                          <td>
                            <Time iso={f.filled_at} zone={viewer.zone} />
                          </td>
                          <td>{f.side}</td>
                          <td class="num">{formatNumber(f.quantity)}</td>
                          <td class="num">{formatNumber(f.price)}</td>
                          <td class="num">{formatMoney(f.fee)}</td>
                          <td>
                            <code class="small">{f.broker_fill_id}</code>
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
          </section>
        </>
      ),
    });
  }),
);
