/**
 * `/signals`: the trader's signals, newest first, filtered by a GET form (status, symbol, account,
 * received from/to in the viewer's time zone) and paged by cursor; each row shows what became of
 * the signal and how long each step took. `/signals/:id`: one signal with its step timeline, its
 * journal, its orders and the body as received (the webhook key blanked).
 */
import { Hono } from "hono";
import { EmptyState, PageHeader, Time } from "../../components/Layout.tsx";
import { Island } from "../../components/Island.tsx";
import { listAccounts } from "../../db/accounts.ts";
import { getSignal, listSignals, type SignalView } from "../../db/reads.ts";
import NewSignals from "../../islands/NewSignals.tsx";
import { formatLatency, formatNumber } from "../../islands/_client/format.ts";
import type { AppEnv } from "../_env.ts";
import { notFoundPage, renderPage, userPage } from "./_page.tsx";
import { FilterForm, InputFilter, Pager, Problems, SelectFilter, StatusBadge } from "./_list.tsx";
import { blankKeys, MAX_PAGE_SIZE, QueryReader, withQuery, zonedMidnight } from "./_query.ts";

/** The statuses a signal can have (db/migrations/0002). */
export const SIGNAL_STATUSES = [
  "accepted",
  "executing",
  "placed",
  "filled",
  "rejected",
  "failed",
  "canceled",
] as const;

/** Signals per page. */
const PAGE_SIZE = 50;
const DAY_MS = 86_400_000;

/** The signals pages. */
export const signalsPage = new Hono<AppEnv>();

/** The step latencies of a signal: accept, dispatch, fill and total. */
export function signalLatencies(s: SignalView) {
  return {
    accept: formatLatency(s.received_at, s.accepted_at),
    dispatch: formatLatency(s.accepted_at, s.dispatched_at ?? s.ordered_at),
    fill: formatLatency(s.ordered_at, s.filled_at),
    total: formatLatency(s.received_at, s.filled_at ?? s.finished_at),
  };
}

function Latency({ value }: { value: string }) {
  return value ? <>{value}</> : <span class="muted">—</span>;
}

function hasReason(s: { status: string; reason: string | null }) {
  return s.reason !== null && s.reason !== "" &&
    (s.status === "rejected" || s.status === "failed" || s.status === "canceled");
}

signalsPage.get(
  "/signals",
  userPage(async (c, { user, viewer }) => {
    const { db } = c.get("deps");
    const q = new QueryReader(c.req.url);
    const form = {
      status: q.text("status"),
      symbol: q.text("symbol"),
      account: q.text("account"),
      from: q.text("from"),
      to: q.text("to"),
    };
    const limit = q.limit(MAX_PAGE_SIZE);
    const status = q.oneOf("status", "status", SIGNAL_STATUSES);
    const symbol = q.symbol();
    const account = q.account();
    const from = q.date("from", "from");
    const to = q.date("to", "to");
    const cursor = q.cursor();
    const since = from && zonedMidnight(from, viewer.zone);
    // "To" is inclusive: up to the start of the next day.
    const until = to && zonedMidnight(nextDay(to), viewer.zone);
    if (since && until && since >= until) {
      q.problems.push(`The "from" date ${form.from} is after the "to" date ${form.to}`);
    }
    const filtered = Object.values(form).some((v) => v !== undefined);
    const accounts = (await listAccounts(db, user.userId)).map((a) => a.alias);
    const filters = (
      <FilterForm action="/signals" active={filtered}>
        <SelectFilter
          name="status"
          label="Status"
          value={form.status}
          any="Any status"
          options={SIGNAL_STATUSES}
        />
        <InputFilter name="symbol" label="Symbol" value={form.symbol} placeholder="AAPL" />
        <SelectFilter
          name="account"
          label="Account"
          value={form.account}
          any="All accounts"
          options={accounts}
        />
        <InputFilter
          name="from"
          label="Received from"
          value={form.from}
          type={dateType(form.from)}
        />
        <InputFilter name="to" label="Received to" value={form.to} type={dateType(form.to)} />
      </FilterForm>
    );
    const header = (
      <PageHeader
        title="Signals"
        lead={
          <>
            Every alert your webhook received, newest first. Times in {viewer.zone}.
          </>
        }
      />
    );
    if (q.problems.length > 0) {
      return renderPage(c, {
        title: "Signals",
        active: "signals",
        viewer,
        status: 400,
        body: (
          <>
            {header}
            <Problems problems={q.problems} />
            {filters}
            <p>
              <a href="/signals">Show all signals</a>
            </p>
          </>
        ),
      });
    }
    const page = await listSignals(db, user.userId, {
      status,
      symbol,
      account,
      since,
      until,
      cursor,
      limit: limit ?? PAGE_SIZE,
    });
    const keep = { ...form, limit: limit === undefined ? undefined : String(limit) };
    const newest = page.data[0];
    let empty = null;
    if (page.data.length === 0) {
      empty = cursor
        ? (
          <EmptyState title="No older signals">
            <p>
              <a href={withQuery("/signals", keep)}>Back to the newest</a>
            </p>
          </EmptyState>
        )
        : filtered
        ? (
          <EmptyState title="No signals match these filters">
            <p>
              Try a wider date range or another status. <a href="/signals">Clear the filters</a>
            </p>
          </EmptyState>
        )
        : (
          <EmptyState title="No signals yet">
            <p>
              Signals appear here when TradingView sends an alert to your webhook.{" "}
              <a href="/settings#keys">Create a webhook key in Settings</a>, then paste the alert
              message it shows into a TradingView alert with the webhook URL.
            </p>
          </EmptyState>
        );
    }
    return renderPage(c, {
      title: "Signals",
      active: "signals",
      viewer,
      body: (
        <>
          {header}
          {filters}
          {!cursor && (
            <Island
              of={NewSignals}
              props={{ since: newest?.received_at ?? null, href: withQuery("/signals", keep) }}
            />
          )}
          {empty ?? (
            <section class="card" aria-labelledby="signals-title">
              <h2 id="signals-title" class="sr-only">Signals</h2>
              <div class="table-wrap">
                <table class="table signals">
                  <thead>
                    <tr>
                      <th scope="col">Received</th>
                      <th scope="col">Symbol</th>
                      <th scope="col">Action</th>
                      <th scope="col" class="num">Qty</th>
                      <th scope="col">Account</th>
                      <th scope="col">Status</th>
                      <th scope="col" class="num" title="Received → accepted">Accept</th>
                      <th scope="col" class="num" title="Accepted → dispatched or ordered">
                        Dispatch
                      </th>
                      <th scope="col" class="num" title="Ordered → filled">Fill</th>
                      <th scope="col" class="num" title="Received → filled or finished">
                        Total
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.data.map((s) => {
                      const l = signalLatencies(s);
                      return (
                        <tr key={s.id} data-signal={s.id}>
                          <td>
                            <a href={`/signals/${s.id}`}>
                              <Time iso={s.received_at} zone={viewer.zone} />
                            </a>
                          </td>
                          <td>
                            {s.symbol ?? s.ticker ?? <span class="muted">—</span>}
                            {s.ticker && s.symbol && s.ticker !== s.symbol && (
                              <span class="muted small">{s.ticker}</span>
                            )}
                          </td>
                          <td>{s.action ?? "—"}</td>
                          <td class="num">{formatNumber(s.quantity)}</td>
                          <td>{s.account ?? <span class="muted">—</span>}</td>
                          <td>
                            <StatusBadge status={s.status} />
                            {hasReason(s) && <div class="reason">{s.reason}</div>}
                          </td>
                          <td class="num">
                            <Latency value={l.accept} />
                          </td>
                          <td class="num">
                            <Latency value={l.dispatch} />
                          </td>
                          <td class="num">
                            <Latency value={l.fill} />
                          </td>
                          <td class="num">
                            <Latency value={l.total} />
                          </td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
              <Pager
                newest={cursor ? withQuery("/signals", keep) : undefined}
                older={page.nextCursor
                  ? withQuery("/signals", { ...keep, cursor: page.nextCursor })
                  : undefined}
              />
            </section>
          )}
        </>
      ),
    });
  }),
);

signalsPage.get(
  "/signals/:id",
  userPage(async (c, { user, viewer }) => {
    const { db } = c.get("deps");
    const signal = await getSignal(db, user.userId, c.req.param("id") ?? "");
    if (!signal) return notFoundPage(c, viewer);
    const s = signal;
    const steps: Array<[string, string | null]> = [
      ["Received", s.received_at],
      ["Accepted", s.accepted_at],
      ["Dispatched", s.dispatched_at],
      ["Ordered", s.ordered_at],
      ["Filled", s.filled_at],
      ["Finished", s.finished_at],
    ];
    let previous: string | null = null;
    const fields: Array<[string, string | null]> = [
      ["Source", s.source],
      ["Account", s.account],
      ["Ticker", s.ticker],
      ["Symbol", s.symbol],
      ["Action", s.action],
      ["Side", s.side],
      ["Quantity", s.quantity === null ? null : formatNumber(s.quantity)],
      ["Order type", s.order_type],
      ["Time in force", s.time_in_force],
      ["Price", s.price === null ? null : formatNumber(s.price)],
      ["Limit price", s.limit_price === null ? null : formatNumber(s.limit_price)],
      ["Stop price", s.stop_price === null ? null : formatNumber(s.stop_price)],
      ["Take profit", s.take_profit === null ? null : formatNumber(s.take_profit)],
      ["Stop loss", s.stop_loss === null ? null : formatNumber(s.stop_loss)],
      ["Sender id", s.sender_id],
      ["Comment", s.comment],
      [
        "Strategy",
        s.strategy === null || s.strategy === undefined ? null : JSON.stringify(s.strategy),
      ],
    ];
    const title = `${s.symbol ?? s.ticker ?? "Signal"} ${s.action ?? ""}`.trim();
    return renderPage(c, {
      title: `Signal ${title}`,
      active: "signals",
      viewer,
      body: (
        <>
          <p>
            <a href="/signals">← All signals</a>
          </p>
          <PageHeader
            title={`Signal: ${title}`}
            lead={
              <>
                <StatusBadge status={s.status} /> received{" "}
                <Time iso={s.received_at} zone={viewer.zone} /> <code class="muted">{s.id}</code>
              </>
            }
          />
          {s.parent_signal_id && (
            <p class="banner" role="note">
              The entry half of a flip your broker cannot do in one order: it opens the new side
              after{" "}
              <a href={`/signals/${s.parent_signal_id}`}>the signal that closed the position</a>.
            </p>
          )}
          {s.entry_signal_id && (
            <p class="banner" role="note">
              A flip your broker cannot do in one order: this signal closed the position, and{" "}
              <a href={`/signals/${s.entry_signal_id}`}>its entry signal</a> opens the new side.
            </p>
          )}
          {hasReason(s) && (
            <p class="banner danger" role="status">
              <strong>{s.status === "rejected" ? "Rejected" : "Reason"}:</strong> {s.reason}
            </p>
          )}
          <div class="grid two">
            <section class="card" aria-labelledby="sig-fields">
              <h2 id="sig-fields">Signal</h2>
              <dl class="fields">
                {fields.filter(([, v]) => v !== null && v !== "").map(([k, v]) => (
                  <div key={k}>
                    <dt>{k}</dt>
                    <dd>{v}</dd>
                  </div>
                ))}
                <div>
                  <dt>Signal time</dt>
                  <dd>
                    <Time iso={s.signal_time} zone={viewer.zone} />
                  </dd>
                </div>
              </dl>
            </section>
            <section class="card" aria-labelledby="sig-steps">
              <h2 id="sig-steps">Timeline</h2>
              <div class="table-wrap">
                <table class="table">
                  <thead>
                    <tr>
                      <th scope="col">Step</th>
                      <th scope="col">Time</th>
                      <th scope="col" class="num">Since previous</th>
                      <th scope="col" class="num">Since received</th>
                    </tr>
                  </thead>
                  <tbody>
                    {steps.map(([label, at]) => {
                      const since = formatLatency(previous, at);
                      if (at) previous = at;
                      return (
                        <tr key={label}>
                          <th scope="row">{label}</th>
                          <td>
                            <Time iso={at} zone={viewer.zone} />
                          </td>
                          <td class="num">
                            <Latency value={since} />
                          </td>
                          <td class="num">
                            <Latency
                              value={label === "Received" ? "" : formatLatency(s.received_at, at)}
                            />
                          </td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            </section>
          </div>
          <section class="card" aria-labelledby="sig-orders">
            <h2 id="sig-orders">Orders</h2>
            {s.orders.length === 0
              ? <p class="empty-inline">No order was placed for this signal.</p>
              : (
                <div class="table-wrap">
                  <table class="table">
                    <thead>
                      <tr>
                        <th scope="col">Created</th>
                        <th scope="col">Leg</th>
                        <th scope="col">Side</th>
                        <th scope="col" class="num">Qty</th>
                        <th scope="col">Type</th>
                        <th scope="col">Status</th>
                        <th scope="col" class="num">Filled</th>
                        <th scope="col" class="num">Avg price</th>
                      </tr>
                    </thead>
                    <tbody>
                      {s.orders.map((o) => (
                        <tr key={o.id}>
                          <td>
                            <a href={`/orders/${o.id}`}>
                              <Time iso={o.created_at} zone={viewer.zone} />
                            </a>
                          </td>
                          <td>{o.leg.replace("_", " ")}</td>
                          <td>{o.side}</td>
                          <td class="num">{formatNumber(o.quantity)}</td>
                          <td>{o.order_type}</td>
                          <td>
                            <StatusBadge status={o.status} />
                            {o.reason && <div class="reason">{o.reason}</div>}
                          </td>
                          <td class="num">{formatNumber(o.filled_quantity)}</td>
                          <td class="num">{formatNumber(o.average_fill_price)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
          </section>
          <section class="card" aria-labelledby="sig-journal">
            <h2 id="sig-journal">Journal</h2>
            {s.journal.length === 0
              ? <p class="empty-inline">No journal entries.</p>
              : (
                <div class="table-wrap">
                  <table class="table">
                    <thead>
                      <tr>
                        <th scope="col">Time</th>
                        <th scope="col">Event</th>
                        <th scope="col">Details</th>
                      </tr>
                    </thead>
                    <tbody>
                      {s.journal.map((j) => (
                        <tr key={j.id}>
                          <td>
                            <Time iso={j.at} zone={viewer.zone} />
                          </td>
                          <td>
                            {j.order_id ? <a href={`/orders/${j.order_id}`}>{j.event}</a> : j.event}
                          </td>
                          <td class="details">
                            <code>{blankKeys(compact(j.data))}</code>
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
          </section>
          <section class="card" aria-labelledby="sig-raw">
            <h2 id="sig-raw">Body as received</h2>
            <p class="muted">The webhook key is blanked out; it is never stored.</p>
            <pre class="raw" tabIndex={0}>{blankKeys(pretty(s.raw_body))}</pre>
          </section>
        </>
      ),
    });
  }),
);

/** A date input, or a text input that still shows a value a date input would drop. */
function dateType(value: string | undefined): "date" | "text" {
  return value === undefined || /^\d{4}-\d{2}-\d{2}$/.test(value) ? "date" : "text";
}

function nextDay(d: { y: number; m: number; d: number }) {
  const next = new Date(Date.UTC(d.y, d.m - 1, d.d) + DAY_MS);
  return { y: next.getUTCFullYear(), m: next.getUTCMonth() + 1, d: next.getUTCDate() };
}

function compact(data: unknown): string {
  if (data === null || data === undefined) return "";
  const text = typeof data === "string" ? data : JSON.stringify(data);
  return text === "{}" ? "" : text;
}

function pretty(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}
