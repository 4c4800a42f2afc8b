/** `deno task bars:fetch` as an operator runs it: the real SDK against the fake data API. */
import assert from "node:assert/strict";
import { readBars } from "../db/bars.ts";
import { sealCredentials } from "../lib/credentials.ts";
import { createKeyring } from "../lib/crypto.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestDb } from "./_db.ts";
import { insertTrader } from "./_fixtures.ts";
import { hexBytes } from "./_pipeline.ts";
import { runTask } from "./_process.ts";
import { startFakeAlpacaData } from "./fakes/alpaca_data.ts";

const KEY = "22".repeat(32);
const PAIR = { keyId: "PKFETCH", secretKey: "fetch-secret-456" };

Deno.test("bars:fetch stores every page of Alpaca's bars with the account's keys, idempotently", async () => {
  await using t = await createTestDb("postgres");
  await using data = startFakeAlpacaData({ ...PAIR, pageSize: 3 });
  data.setBars(
    "AAPL",
    "1Hour",
    Array.from({ length: 7 }, (_, i) => ({
      t: new Date(Date.UTC(2026, 0, 5, 14 + i)).toISOString().replace(".000Z", "Z"),
      o: 190 + i,
      h: 191 + i,
      l: 189 + i,
      c: 190.5 + i,
      v: 5000,
      n: 40,
      vw: 190.4 + i,
    })),
  );
  const trader = await insertTrader(t.db, { email: "fetch@example.com" });
  const keyring = createKeyring({ current: { key: hexBytes(KEY), version: 1 } });
  await t.db.query(
    `INSERT INTO broker_accounts (id, user_id, alias, broker, credentials)
     VALUES ($1, $2, 'alpaca', 'alpaca', $3), ($4, $2, 'wrong', 'alpaca', $5)`,
    [
      uuidv7(),
      trader.userId,
      await sealCredentials(keyring, PAIR),
      uuidv7(),
      await sealCredentials(keyring, { keyId: "PKBAD", secretKey: "bad-secret-789" }),
    ],
  );
  const env = {
    APP_ENV: "test",
    DATABASE_URL: t.url!,
    ENCRYPTION_KEY: KEY,
    ALPACA_DATA_URL: data.url,
  };
  const args = [
    "--email",
    "fetch@example.com",
    "--symbol",
    "NASDAQ:AAPL",
    "--timeframe",
    "1h",
    "--from",
    "2026-01-05T00:00:00Z",
    "--to",
    "2026-01-06T00:00:00Z",
  ];

  for (let round = 0; round < 2; round++) {
    const out = await runTask(env, "bars:fetch", "--account", "alpaca", ...args);
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stdout,
      /Fetched AAPL 1h from 2026-01-05T00:00:00.000Z .*: 7 bars stored from 3 pages/,
    );
  }
  const bars = await readBars(t.db, { userId: trader.userId, symbol: "AAPL", timeframe: "1h" });
  assert.equal(bars.length, 7, "fetched twice, stored once");
  assert.equal(bars[6]!.ts.toISOString(), "2026-01-05T20:00:00.000Z");
  assert.equal(Number(bars[6]!.close), 196.5);

  const refused = await runTask(env, "bars:fetch", "--account", "wrong", ...args);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /Cannot fetch 1h bars of "AAPL" from Alpaca: the API keys were refused \(403\)/,
  );
  assert.ok(
    !refused.stderr.includes("bad-secret-789") && !refused.stdout.includes("bad-secret-789"),
  );

  const paper = await runTask(env, "bars:fetch", "--account", "paper", ...args);
  assert.equal(paper.code, 1);
  assert.match(paper.stderr, /account "paper" is not an Alpaca account/);

  for (
    const bad of [
      ["--account", "alpaca", ...args.slice(0, 6)],
      ["--account", "alpaca", ...args.slice(0, 7), "last tuesday"],
      ["--account", "alpaca", ...args.with(5, "3h")],
    ]
  ) {
    const out = await runTask(env, "bars:fetch", ...bad);
    assert.equal(out.code, 64, `${bad.join(" ")}: ${out.stderr}`);
    assert.match(out.stderr, /Usage: deno task bars:fetch/);
  }
});
