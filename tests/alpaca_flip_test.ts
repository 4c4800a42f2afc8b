/**
 * A strategy reversal end to end on Alpaca, which does not flip a position in one order:
 * TradingView alerts through the webhook of the in-process runtime on PostgreSQL, an Alpaca account
 * created through the API, the real SDK against the fake Alpaca (which refuses a sell of more than
 * is held, as Alpaca does). The reversal is split into the close and an entry, each submitted
 * once, linked in the record and in the read API.
 */
import assert from "node:assert/strict";
import { eventually, postAlert, startAlpacaRuntime } from "./_pipeline.ts";

const KEYS = { key_id: "PKE2EFLIP00000000001", secret_key: "e2e-flip-secret-0123456789abcdefghij" };
const TERMINAL = ["filled", "rejected", "failed", "canceled"];

Deno.test("a reversal through the webhook at Alpaca closes the long, then opens the short with the alert's bracket", async () => {
  await using stack = await startAlpacaRuntime(KEYS, { AAPL: "190" });
  const { alpaca, db, server, trader, token, statusOf } = stack;
  const auth = { Authorization: `Bearer ${token}` };
  await stack.addAccount("alpaca-flip");
  const alert = (fields: Record<string, unknown>) =>
    postAlert(server.url, {
      key: trader.key,
      account: "alpaca-flip",
      ticker: "NASDAQ:AAPL",
      price: 190,
      ...fields,
    });

  const long = await alert({ action: "buy", quantity: 10, id: "long-1" });
  assert.equal(long.status, 202, JSON.stringify(long.body));
  await eventually(
    "the long is filled",
    async () => (await statusOf(long.body.signal_id)) === "filled",
  );

  // What a TradingView strategy sends to reverse: the position plus the new size.
  const reversal = await alert({
    action: "sell",
    quantity: 25,
    take_profit: 180,
    stop_loss: 195,
    id: "reverse-1",
  });
  assert.equal(reversal.status, 202, JSON.stringify(reversal.body));
  const closeId: string = reversal.body.signal_id;
  let entryId = "";
  await eventually("the close and its entry are finished", async () => {
    const [row] = await db.query<{ id: string }>(
      "SELECT id FROM signals WHERE parent_signal_id = $1",
      [closeId],
    );
    if (!row) return false;
    entryId = row.id;
    return TERMINAL.includes((await statusOf(closeId)) ?? "") &&
      TERMINAL.includes((await statusOf(entryId)) ?? "");
  });

  // At the broker: one sell of the 10 held, plain; one sell of 15 more, with the bracket.
  const close = alpaca.orders.get(closeId)!;
  assert.deepEqual([close.side, close.qty, close.status, close.legs ?? null], [
    "sell",
    "10",
    "filled",
    null,
  ]);
  const entry = alpaca.orders.get(entryId)!;
  assert.deepEqual([entry.side, entry.qty, entry.status, entry.order_class], [
    "sell",
    "15",
    "filled",
    "bracket",
  ]);
  assert.deepEqual(entry.legs!.map((l) => l.limit_price ?? l.stop_price), ["180", "195"]);
  const posts = alpaca.requests.filter((r) => r.method === "POST" && r.path === "/v2/orders");
  assert.equal(posts.length, 3, "the long, the close and the entry, each once");

  // Through the read API: both halves filled, each pointing at the other; the position short 15.
  const read = async (id: string) => {
    const res = await fetch(`${server.url}/api/v1/signals/${id}`, { headers: auth });
    assert.equal(res.status, 200);
    return await res.json();
  };
  const closeView = await read(closeId);
  const entryView = await read(entryId);
  assert.deepEqual(
    [closeView.status, closeView.entry_signal_id, closeView.parent_signal_id],
    ["filled", entryId, null],
  );
  assert.deepEqual(
    [entryView.status, entryView.parent_signal_id, entryView.quantity, entryView.take_profit],
    ["filled", closeId, "15", "180"],
  );
  const positions = await fetch(`${server.url}/api/v1/positions`, { headers: auth });
  const listed = await positions.json();
  const aapl = listed.data.find((p: { symbol: string }) => p.symbol === "AAPL");
  assert.equal(aapl?.quantity, "-15");
  const [journaled] = await db.query<{ data: Record<string, unknown> }>(
    "SELECT data FROM journal WHERE signal_id = $1 AND event = 'signal.split'",
    [closeId],
  );
  assert.deepEqual(journaled?.data, {
    entry_signal_id: entryId,
    close_quantity: "10",
    entry_quantity: "15",
  });
});
