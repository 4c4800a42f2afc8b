/** `deno task bars:import` as an operator runs it, against a real PostgreSQL database. */
import assert from "node:assert/strict";
import { readBars } from "../db/bars.ts";
import { openDb } from "../db/client.ts";
import { migrateUp } from "../db/migrate.ts";
import { createPostgresDatabase } from "./_db.ts";
import { insertTrader } from "./_fixtures.ts";
import { runTask } from "./_process.ts";

const ROWS = 50_000;
const START_S = Date.UTC(2020, 0, 1) / 1000;

/** A CSV of `ROWS` one-minute bars in epoch seconds, TradingView's header, with bad lines. */
function fixture(): string {
  const lines = ["time,open,high,low,close,Volume,Plot"];
  for (let i = 0; i < ROWS; i++) {
    const open = (100 + (i % 50) / 10).toFixed(2);
    lines.push(`${START_S + i * 60},${open},${open + "5"},99.5,${open},${i},1`);
  }
  lines[3] = `${START_S + 2 * 60},100,99,101,100,5,1`; // line 4: high below low
  lines[10] = "not a time,1,1,1,1,1,1"; // line 11
  lines.push("", `${START_S + ROWS * 60},{{open}},1,1,1,1,1`); // a blank line, then line ROWS + 3
  return lines.join("\r\n") + "\r\n";
}

Deno.test("bars:import streams a large CSV in batches, reports bad lines and is idempotent", async () => {
  const database = await createPostgresDatabase();
  const dir = await Deno.makeTempDir({ prefix: "trendedge-bars-" });
  try {
    const db = await openDb({ url: database.url, poolSize: 1 });
    let userId: string;
    try {
      await migrateUp(db);
      userId = (await insertTrader(db, { email: "bars@example.com" })).userId;
    } finally {
      await db.close();
    }
    const file = `${dir}/aapl.csv`;
    await Deno.writeTextFile(file, fixture());
    const env = { DATABASE_URL: database.url };
    const args = ["--email", "bars@example.com", "--symbol", "NASDAQ:AAPL", "--timeframe", "1"];

    const first = await runTask(env, "bars:import", ...args, file);
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      new RegExp(
        `Read ${ROWS + 1} rows of ".*aapl\\.csv" for AAPL 1m: stored ${ROWS - 2}, skipped 3`,
      ),
    );
    assert.match(first.stdout, /line 4: "high" must be at least/);
    assert.match(first.stdout, /line 11: "time" must be/);
    assert.match(first.stdout, new RegExp(`line ${ROWS + 3}: "open" must be`));

    const again = await runTask(env, "bars:import", ...args, file);
    assert.equal(again.code, 0, again.stderr);

    const check = await openDb({ url: database.url, poolSize: 1 });
    try {
      const bars = await readBars(check, { userId, symbol: "AAPL", timeframe: "1m" });
      assert.equal(bars.length, ROWS - 2, "the second import updated the same rows");
      assert.equal(bars[0]!.ts.toISOString(), "2020-01-01T00:00:00.000Z");
      assert.equal(bars[0]!.open, "100.00");
      assert.equal(bars[5]!.volume, "6", "the bar of line 4 was skipped");
    } finally {
      await check.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await database.drop();
  }
});

Deno.test("bars:import exits 64 on bad arguments, 66 on a missing file, 65 with no valid rows", async () => {
  const database = await createPostgresDatabase();
  const dir = await Deno.makeTempDir({ prefix: "trendedge-bars-" });
  try {
    const db = await openDb({ url: database.url, poolSize: 1 });
    try {
      await migrateUp(db);
      await insertTrader(db, { email: "bars@example.com" });
    } finally {
      await db.close();
    }
    const env = { DATABASE_URL: database.url };
    const base = ["--email", "bars@example.com", "--symbol", "AAPL"];
    const good = `${dir}/good.csv`;
    await Deno.writeTextFile(good, "time,open,high,low,close,volume\n2026-01-05,1,2,1,2,10\n");

    for (
      const [args, pattern] of [
        [[...base, good], /Usage: deno task bars:import/],
        [[...base, "--timeframe", "1d"], /Usage: deno task bars:import/],
        [[...base, "--timeframe", "3h", good], /"--timeframe" "3h" is unknown/],
        [[...base, "--timeframe", "1d", "--frm", "x", good], /Usage: deno task bars:import/],
      ] as const
    ) {
      const out = await runTask(env, "bars:import", ...args);
      assert.equal(out.code, 64, `${args.join(" ")}: ${out.stderr}`);
      assert.match(out.stderr, pattern);
    }

    const missing = await runTask(
      env,
      "bars:import",
      ...base,
      "--timeframe",
      "1d",
      `${dir}/no.csv`,
    );
    assert.equal(missing.code, 66, missing.stderr);
    assert.match(missing.stderr, /Cannot import bars: cannot open ".*no\.csv"/);

    const bad = `${dir}/bad.csv`;
    await Deno.writeTextFile(bad, "time,open,high,low,close,volume\nx,1,1,1,1,1\n");
    const none = await runTask(env, "bars:import", ...base, "--timeframe", "1d", bad);
    assert.equal(none.code, 65, none.stderr);
    assert.match(none.stdout, /stored 0, skipped 1/);
    assert.match(none.stderr, /no valid rows/);

    const headless = `${dir}/headless.csv`;
    await Deno.writeTextFile(headless, "1767571200,1,2,1,2,10\n");
    const noHeader = await runTask(env, "bars:import", ...base, "--timeframe", "1d", headless);
    assert.equal(noHeader.code, 65, noHeader.stderr);
    assert.match(noHeader.stderr, /must be a header/);

    const ok = await runTask(env, "bars:import", ...base, "--timeframe", "D", good);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /stored 1, skipped 0/);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await database.drop();
  }
});
