import assert from "node:assert/strict";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import { type Bar, readBars, upsertBars } from "./bars.ts";

const T0 = Date.UTC(2026, 0, 5, 14);
const HOUR = 3_600_000;

function bar(i: number, close = `${100 + i}.25`): Bar {
  return {
    ts: new Date(T0 + i * HOUR),
    open: `${100 + i}`,
    high: `${102 + i}.5`,
    low: `${99 + i}`,
    close,
    volume: `${1000 * (i + 1)}`,
  };
}

for (const engine of ENGINES) {
  Deno.test(`bars upsert idempotently and read back exactly, oldest first (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const ann = await insertTrader(t.db);
    const bob = await insertTrader(t.db);
    const key = { userId: ann.userId, symbol: "AAPL", timeframe: "1h" as const };
    const bars = Array.from({ length: 10 }, (_, i) => bar(i));
    assert.equal(await upsertBars(t.db, { ...key, source: "csv" }, bars), 10);
    // Sent again, with one corrected close and a duplicate inside the batch: still 10 rows.
    const again = [...bars.slice(0, 5), bar(5, "999.125"), bar(5, "105.5"), ...bars.slice(6)];
    assert.equal(await upsertBars(t.db, { ...key, source: "webhook" }, again), 10);
    const read = await readBars(t.db, key);
    assert.equal(read.length, 10);
    assert.deepEqual(read[0], bars[0]);
    assert.equal(read[5]!.close, "105.5", "the last of duplicates wins");
    assert.deepEqual(read.map((b) => b.ts.getTime()), bars.map((b) => b.ts.getTime()));

    const newest = await readBars(t.db, key, { limit: 3 });
    assert.deepEqual(newest.map((b) => b.close), ["107.25", "108.25", "109.25"]);
    const window = await readBars(t.db, key, {
      since: new Date(T0 + 2 * HOUR),
      until: new Date(T0 + 4 * HOUR),
    });
    assert.equal(window.length, 2);
    assert.equal((await readBars(t.db, { ...key, userId: bob.userId })).length, 0, "per user");
    await assert.rejects(
      upsertBars(t.db, { ...key, source: "csv" }, [{ ...bar(20), high: "1", low: "2" }]),
    );
  });
}
