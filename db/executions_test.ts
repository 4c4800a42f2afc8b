import assert from "node:assert/strict";
import { uuidv7 } from "../lib/ids.ts";
import { validateSignal } from "../lib/signal.ts";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { lastPrice } from "./executions.ts";
import { acceptSignal } from "./signals.ts";

for (const engine of ENGINES) {
  Deno.test(`${engine}: the last known price is the newest an alert carried for the symbol, or a recorded one`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    assert.equal(await lastPrice(t.db, "AAPL"), null);
    const accept = async (at: string, price?: number) => {
      const r = validateSignal({
        ticker: "AAPL",
        action: "buy",
        quantity: 1,
        ...(price ? { price } : {}),
      });
      assert.ok(r.ok);
      const receivedAt = new Date(at);
      await acceptSignal(
        t.db,
        {
          id: uuidv7(receivedAt.getTime()),
          userId: trader.userId,
          accountId: trader.accountId,
          keyId: null,
          source: "tradingview",
          rawBody: "{}",
          receivedAt,
        },
        r.signal,
        { dedupKey: `k${at}${price}`, windowMs: 1, symbol: "AAPL" },
      );
    };
    await accept("2026-11-20T14:30:00Z", 190);
    await accept("2026-11-20T14:31:00Z", 191.5);
    await accept("2026-11-20T14:32:00Z"); // no price: does not count
    assert.equal(await lastPrice(t.db, "AAPL"), "191.5");
    await t.db.query(
      "INSERT INTO last_prices (symbol, price, at) VALUES ('AAPL', 192, '2026-11-20T14:33:00Z')",
    );
    assert.equal(await lastPrice(t.db, "AAPL"), "192", "a newer recorded price wins");
    assert.equal(await lastPrice(t.db, "MSFT"), null);
  });
}
