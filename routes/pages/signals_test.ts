import assert from "node:assert/strict";
import { ENGINES } from "../../tests/_db.ts";
import { dataIds, insertTrader, olderLink, rowOf, startPages } from "../../tests/_pages.ts";
import { zonedMidnight } from "./_query.ts";

const ZONE = "America/New_York";

/** Today's date (YYYY-MM-DD) in `zone`, `days` from now. */
function dateIn(zone: string, days = 0): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(
    new Date(Date.now() + days * 86_400_000),
  );
}

Deno.test("zonedMidnight is the start of the day in the viewer's zone, across DST", () => {
  assert.equal(
    zonedMidnight({ y: 2026, m: 1, d: 15 }, ZONE).toISOString(),
    "2026-01-15T05:00:00.000Z",
  );
  assert.equal(
    zonedMidnight({ y: 2026, m: 7, d: 1 }, ZONE).toISOString(),
    "2026-07-01T04:00:00.000Z",
  );
  // The day DST starts in New York (02:00 → 03:00) still starts at midnight EST.
  assert.equal(
    zonedMidnight({ y: 2026, m: 3, d: 8 }, ZONE).toISOString(),
    "2026-03-08T05:00:00.000Z",
  );
  assert.equal(
    zonedMidnight({ y: 2026, m: 1, d: 15 }, "Asia/Tokyo").toISOString(),
    "2026-01-14T15:00:00.000Z",
  );
  assert.equal(
    zonedMidnight({ y: 2026, m: 1, d: 15 }, "UTC").toISOString(),
    "2026-01-15T00:00:00.000Z",
  );
});

for (const engine of ENGINES) {
  Deno.test(`signals pages on ${engine}: rows, filters, pagination, detail, isolation, bad params`, async () => {
    await using t = await startPages(engine);
    const db = t.app.runtime.db;
    const ann = await insertTrader(db, { risk: { allowed_symbols: ["AAPL", "MSFT"] } });
    const bob = await insertTrader(db);

    const aapl = await t.signal(ann.key, { ticker: "NASDAQ:AAPL", quantity: 2, price: 190.25 });
    const msft = await t.signal(ann.key, { ticker: "NASDAQ:MSFT", quantity: 1, price: 410 });
    const tsla = await t.signal(
      ann.key,
      { ticker: "NASDAQ:TSLA", quantity: 1, price: 250 },
      "rejected",
    );
    const aapl2 = await t.signal(ann.key, {
      ticker: "NASDAQ:AAPL",
      action: "sell",
      quantity: 1,
      price: 191,
    });
    const msft2 = await t.signal(ann.key, {
      ticker: "NASDAQ:MSFT",
      action: "sell",
      quantity: 1,
      price: 411,
    });
    const all = [msft2, aapl2, tsla, msft, aapl];

    // The list: newest first, each step's latency, the rejection reason.
    const list = await t.page(ann.userId, "/signals", ZONE);
    assert.equal(list.status, 200, list.html);
    assert.deepEqual(dataIds(list.html, "signal"), all);
    const filled = rowOf(list.html, "signal", aapl);
    assert.match(filled, /badge filled/);
    const latencies = [...filled.matchAll(/<td class="num">(\d+ ms|\d+\.\d s)<\/td>/g)];
    assert.equal(latencies.length, 4, `four latencies in ${filled}`);
    const rejected = rowOf(list.html, "signal", tsla);
    assert.match(rejected, /badge rejected/);
    assert.match(rejected, /class="reason">[^<]*TSLA/);
    assert.match(list.html, /<th scope="col"/);
    assert.match(list.html, /<label for="f-status">/);
    assert.match(list.html, /data-island="NewSignals"/);

    // Filters narrow the rows.
    const ids = async (query: string) => {
      const res = await t.page(ann.userId, `/signals?${query}`, ZONE);
      assert.equal(res.status, 200, res.html);
      return dataIds(res.html, "signal");
    };
    assert.deepEqual(await ids("status=rejected"), [tsla]);
    assert.deepEqual(await ids("symbol=AAPL"), [aapl2, aapl]);
    assert.deepEqual(await ids("symbol=NASDAQ%3AMSFT"), [msft2, msft], "by ticker too");
    assert.deepEqual(await ids("account=paper&status=filled&symbol=MSFT"), [msft2, msft]);
    assert.deepEqual(await ids(`from=${dateIn(ZONE)}&to=${dateIn(ZONE)}`), all);
    assert.deepEqual(await ids(`from=${dateIn(ZONE, 1)}`), []);
    assert.deepEqual(await ids(`to=${dateIn(ZONE, -1)}`), []);
    const none = await t.page(ann.userId, "/signals?account=nope", ZONE);
    assert.equal(none.status, 200);
    assert.match(none.html, /No signals match these filters/);
    assert.match(none.html, /href="\/signals">Clear the filters/);

    // Pages of two: every signal once, in order, the filters kept on every link.
    const seen: string[] = [];
    let next: string | null = "/signals?account=paper&limit=2";
    let pages = 0;
    while (next) {
      const res = await t.page(ann.userId, next, ZONE);
      assert.equal(res.status, 200, res.html);
      seen.push(...dataIds(res.html, "signal"));
      next = olderLink(res.html);
      if (next) assert.match(next, /account=paper/);
      if (next) assert.match(next, /limit=2/);
      pages++;
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, all);

    // One signal: fields, timeline, journal, orders, the body without the key.
    const detail = await t.page(ann.userId, `/signals/${aapl}`, ZONE);
    assert.equal(detail.status, 200, detail.html);
    const [order] = await db.query<{ id: string }>("SELECT id FROM orders WHERE signal_id = $1", [
      aapl,
    ]);
    assert.ok(detail.html.includes(`href="/orders/${order!.id}"`), "links its order");
    assert.match(detail.html, /signal\.accepted/);
    assert.match(detail.html, /order\.filled/);
    assert.match(detail.html, /Timeline/);
    assert.match(detail.html, /Since received/);
    assert.match(detail.html, /\d+ ms|\d+\.\d s/);
    assert.match(detail.html, /REDACTED/);
    assert.ok(!detail.html.includes(ann.key), "the webhook key is never shown");
    assert.ok(!detail.html.includes(ann.key.slice(4, 20)), "not even part of it");
    const rejectedDetail = await t.page(ann.userId, `/signals/${tsla}`, ZONE);
    assert.match(rejectedDetail.html, /Rejected:<\/strong>[^<]*TSLA/);
    // A split flip's halves link to each other (Alpaca's; linked by hand here, on paper).
    await db.query("UPDATE signals SET parent_signal_id = $1 WHERE id = $2", [aapl, aapl2]);
    const close = await t.page(ann.userId, `/signals/${aapl}`, ZONE);
    assert.match(close.html, /this signal closed the position/);
    assert.ok(close.html.includes(`href="/signals/${aapl2}"`), "links its entry");
    const entry = await t.page(ann.userId, `/signals/${aapl2}`, ZONE);
    assert.match(entry.html, /The entry half of a flip/);
    assert.ok(entry.html.includes(`href="/signals/${aapl}"`), "links its close");
    await db.query("UPDATE signals SET parent_signal_id = NULL WHERE id = $1", [aapl2]);

    // Another user's signal, a malformed id: the 404 page, nothing of Ann's.
    const foreign = await t.page(bob.userId, `/signals/${aapl}`);
    assert.equal(foreign.status, 404);
    assert.match(foreign.html, /Not found/);
    assert.ok(!foreign.html.includes("190.25") && !foreign.html.includes("REDACTED"));
    assert.equal((await t.page(ann.userId, "/signals/not-an-id")).status, 404);
    // Bob's own list is empty: he is told how to connect TradingView.
    const empty = await t.page(bob.userId, "/signals");
    assert.equal(empty.status, 200);
    assert.match(empty.html, /No signals yet/);
    assert.match(empty.html, /href="\/settings#keys"/);
    assert.deepEqual(dataIds(empty.html, "signal"), []);
    // Ann's cursor does not show Bob her signals.
    const cursor = new URL(
      olderLink((await t.page(ann.userId, "/signals?limit=1")).html)!,
      t.app.url,
    )
      .searchParams.get("cursor")!;
    const bobs = await t.page(bob.userId, `/signals?cursor=${cursor}`);
    assert.equal(bobs.status, 200);
    assert.deepEqual(dataIds(bobs.html, "signal"), []);

    // Bad filters: a 400 page that says what is wrong.
    for (
      const [query, message] of [
        ["status=bogus", /Unknown status &quot;bogus&quot;/],
        ["from=2026-13-01", /Cannot read the from date/],
        ["to=yesterday", /Cannot read the to date/],
        ["cursor=%21%21garbage", /page link is damaged/],
        ["cursor=eyJub3QiOiJhIGN1cnNvciJ9", /page link is damaged/],
        ["account=Not%20An%20Alias", /Cannot filter by account/],
        ["limit=0", /rows a page/],
        [`from=${dateIn(ZONE, 1)}&to=${dateIn(ZONE, -1)}`, /is after the/],
      ] as const
    ) {
      const res = await t.page(ann.userId, `/signals?${query}`, ZONE);
      assert.equal(res.status, 400, `${query}: ${res.status}`);
      assert.match(res.html, message, query);
      assert.match(res.html, /role="alert"/);
      assert.deepEqual(dataIds(res.html, "signal"), [], "no rows under an error");
    }
    // The bad date stays in the form to be corrected (a date input would drop it).
    const badDate = await t.page(ann.userId, "/signals?from=2026-02-31", ZONE);
    assert.match(badDate.html, /id="f-from"[^>]*value="2026-02-31"/);
    const typo = await t.page(ann.userId, "/signals?from=last%20week", ZONE);
    assert.match(typo.html, /id="f-from" name="from" type="text" value="last week"/);
  });
}

Deno.test("signals pages need a session: the login, back to the page", async () => {
  await using t = await startPages("pglite");
  const res = await fetch(`${t.app.url}/signals?status=filled`, { redirect: "manual" });
  await res.body?.cancel();
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "/login?next=%2Fsignals%3Fstatus%3Dfilled");
});
