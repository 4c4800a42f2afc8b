import assert from "node:assert/strict";
import { ENGINES } from "../../tests/_db.ts";
import { dataIds, insertTrader, olderLink, rowOf, startPages } from "../../tests/_pages.ts";
import { formatR, rMultiple } from "./orders.tsx";

Deno.test("rMultiple is realized P&L over |entry − stop| × quantity, none without a stop", () => {
  const trade = { realized_pnl: "20", entry_price: "100", stop_loss: "95", quantity: "2" };
  assert.equal(rMultiple(trade), 2);
  assert.equal(rMultiple({ ...trade, realized_pnl: "-5" }), -0.5);
  // A short: the stop is above the entry.
  assert.equal(rMultiple({ ...trade, stop_loss: "105", realized_pnl: "-10" }), -1);
  assert.equal(rMultiple({ ...trade, stop_loss: null }), null);
  assert.equal(rMultiple({ ...trade, stop_loss: "100" }), null);
  assert.equal(formatR(2), "2.00R");
  assert.equal(formatR(-0.5), "-0.50R");
  assert.equal(formatR(null), "—");
});

for (const engine of ENGINES) {
  Deno.test(`orders pages on ${engine}: trades with R and summary, orders, filters, pages, detail, isolation`, async () => {
    await using t = await startPages(engine);
    const db = t.app.runtime.db;
    const ann = await insertTrader(db);
    const bob = await insertTrader(db);

    // A winner with a known stop: long 2 at 100, stop 95, closed at 110 → +20, risk 10, 2R.
    const win = await t.signal(ann.key, {
      ticker: "NASDAQ:AAPL",
      quantity: 2,
      price: 100,
      stop_loss: 95,
    });
    await t.signal(ann.key, { ticker: "NASDAQ:AAPL", action: "close", price: 110 });
    // A loser without a stop: long 1 MSFT at 50, closed at 45 → −5.
    const loss = await t.signal(ann.key, { ticker: "NASDAQ:MSFT", quantity: 1, price: 50 });
    await t.signal(ann.key, { ticker: "NASDAQ:MSFT", action: "close", price: 45 });
    // Still open.
    const open = await t.signal(ann.key, { ticker: "NASDAQ:NVDA", quantity: 3, price: 120 });

    const trades = await db.query<
      { id: string; sig: string; status: string; stop: string; pnl: string }
    >(
      `SELECT id, entry_signal_id::text AS sig, status, stop_loss::text AS stop, realized_pnl::text AS pnl,
              exit_price::text AS exit
       FROM trades WHERE user_id = $1`,
      [ann.userId],
    );
    const tradeOf = (signal: string) => trades.find((r) => r.sig === signal)!;
    assert.equal(trades.length, 3, JSON.stringify(trades));

    // Trades: newest first, R on the one with a stop, "—" without; the summary over all.
    const res = await t.page(ann.userId, "/orders");
    assert.equal(res.status, 200, res.html);
    assert.deepEqual(dataIds(res.html, "trade"), [open, loss, win].map((s) => tradeOf(s).id));
    const winner = rowOf(res.html, "trade", tradeOf(win).id);
    assert.match(winner, /data-col="r">2\.00R</);
    assert.match(winner, /class="num up">20\.00</);
    assert.match(winner, /badge closed/);
    const loser = rowOf(res.html, "trade", tradeOf(loss).id);
    assert.match(loser, /data-col="r">—</);
    assert.match(loser, /class="num down">-5\.00</);
    assert.match(rowOf(res.html, "trade", tradeOf(open).id), /badge open/);
    const summary =
      /<p class="summary" data-summary="trades">([\s\S]*?)<\/p>/.exec(res.html)?.[1] ?? "";
    assert.match(summary, /3 trades</);
    assert.match(summary, /Win rate 50%/);
    assert.match(summary, /\(1 of 2 closed\)/);
    assert.match(summary, /15\.00/);

    // Filters narrow trades and the summary with them.
    const closed = await t.page(ann.userId, "/orders?view=trades&status=closed&symbol=AAPL");
    assert.deepEqual(dataIds(closed.html, "trade"), [tradeOf(win).id]);
    assert.match(closed.html, /Win rate 100%/);
    assert.match(closed.html, /matching the filters/);

    // Orders: every order, newest first; filters; pages of two without repeats or gaps.
    const orders = await db.query<{ id: string }>(
      "SELECT id FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
      [ann.userId],
    );
    const list = await t.page(ann.userId, "/orders?view=orders");
    assert.equal(list.status, 200, list.html);
    assert.deepEqual(dataIds(list.html, "order"), orders.map((o) => o.id));
    assert.match(list.html, /aria-current="page"[^>]*>Orders</);
    const msft = await t.page(ann.userId, "/orders?view=orders&symbol=MSFT&status=filled");
    assert.equal(dataIds(msft.html, "order").length, 2);
    const seen: string[] = [];
    let next: string | null = "/orders?view=orders&account=paper&limit=2";
    while (next) {
      const page = await t.page(ann.userId, next);
      assert.equal(page.status, 200, page.html);
      seen.push(...dataIds(page.html, "order"));
      next = olderLink(page.html);
      if (next) assert.match(next, /view=orders&account=paper&limit=2&cursor=/);
    }
    assert.deepEqual(seen, orders.map((o) => o.id));

    // One order: status history and fills.
    const [entry] = await db.query<{ id: string; price: string }>(
      `SELECT o.id, f.price::text AS price FROM orders o JOIN fills f ON f.order_id = o.id
       WHERE o.signal_id = $1 AND o.leg = 'entry'`,
      [win],
    );
    const detail = await t.page(ann.userId, `/orders/${entry!.id}`);
    assert.equal(detail.status, 200, detail.html);
    assert.match(detail.html, /Status history/);
    assert.match(detail.html, /badge filled/);
    assert.match(detail.html, /Fills/);
    assert.ok(detail.html.includes(`href="/signals/${win}"`), "links its signal");
    assert.match(detail.html, new RegExp(`<td class="num">${Number(entry!.price)}</td>`));

    // Another user's order, a malformed id: the 404 page; Bob has nothing yet.
    const foreign = await t.page(bob.userId, `/orders/${entry!.id}`);
    assert.equal(foreign.status, 404);
    assert.ok(!foreign.html.includes("Status history") && !foreign.html.includes("AAPL"));
    assert.equal((await t.page(ann.userId, "/orders/12345")).status, 404);
    const bobTrades = await t.page(bob.userId, "/orders");
    assert.match(bobTrades.html, /No trades yet/);
    assert.match(bobTrades.html, /href="\/settings#keys"/);
    const bobOrders = await t.page(bob.userId, "/orders?view=orders");
    assert.match(bobOrders.html, /No orders yet/);
    const nothing = await t.page(ann.userId, "/orders?view=orders&symbol=ZZZZ");
    assert.match(nothing.html, /No orders match these filters/);

    // Bad parameters: 400 with a message.
    for (
      const [query, message] of [
        ["view=positions", /Unknown view/],
        ["view=orders&status=open", /Unknown order status &quot;open&quot;/],
        ["status=filled", /Unknown trade status/],
        ["cursor=abc", /page link is damaged/],
        ["view=orders&limit=1000", /rows a page/],
      ] as const
    ) {
      const bad = await t.page(ann.userId, `/orders?${query}`);
      assert.equal(bad.status, 400, `${query}: ${bad.status}`);
      assert.match(bad.html, message, query);
    }
  });
}
