/**
 * The `floor-writes` bench server makes the writes it claims to — the app's durable writes for a
 * paper fill — so that the pipeline bench's reference does not drift silently from the schema
 * (a migration that adds a required column would otherwise show up only as bench errors).
 */
import assert from "node:assert/strict";
import { openPostgres } from "../db/postgres.ts";
import { spawnServer } from "./_spawn.ts";

Deno.test("floor-writes accepts, answers 202 (200 for a duplicate), then writes a filled paper order into the app's schema", async () => {
  await using server = await spawnServer("floor-writes");
  const post = (id: string, action: string) =>
    fetch(`${server.url}/hook`, {
      method: "POST",
      body: JSON.stringify({
        key: "ignored",
        ticker: "AAPL",
        action,
        quantity: 2,
        price: "100.50",
        id,
      }),
    });
  const first = await post("t:1", "buy");
  assert.equal(first.status, 202);
  const { signal_id: id } = await first.json();
  assert.equal((await post("t:2", "sell")).status, 202);
  const duplicate = await post("t:1", "buy");
  assert.equal(duplicate.status, 200);
  await duplicate.body?.cancel();

  const db = openPostgres(server.databaseUrl!, { poolSize: 1 });
  try {
    let rows: Array<{ status: string }> = [];
    for (let i = 0; i < 100; i++) {
      rows = await db.query("SELECT status FROM signals");
      if (rows.length === 2 && rows.every((r) => r.status === "filled")) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(rows.map((r) => r.status), ["filled", "filled"]);
    const events = await db.query<{ event: string }>(
      "SELECT event FROM journal WHERE signal_id = $1 ORDER BY event",
      [id],
    );
    // The journal entries the app writes for a paper market fill.
    assert.deepEqual(events.map((e) => e.event), [
      "order.created",
      "order.filled",
      "order.updated",
      "signal.accepted",
      "signal.filled",
    ]);
    const [order] = await db.query<{ status: string; quantity: string; fills: number }>(
      `SELECT o.status, o.quantity::text AS quantity, (SELECT count(*)::int FROM fills f WHERE f.order_id = o.id) AS fills
       FROM orders o WHERE o.signal_id = $1`,
      [id],
    );
    assert.deepEqual(order, { status: "filled", quantity: "2", fills: 1 });
    const [position] = await db.query<{ quantity: string }>(
      "SELECT quantity::text AS quantity FROM positions WHERE symbol = 'AAPL'",
    );
    assert.equal(position?.quantity, "0", "bought 2, sold 2");
  } finally {
    await db.close();
  }
});
