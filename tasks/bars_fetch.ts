/**
 * `deno task bars:fetch --email E --account ALIAS --symbol S --timeframe T --from ISO [--to ISO]`
 * — fetches historical bars from Alpaca's market data API (ALPACA_DATA_URL) with the Alpaca
 * account's own keys, decrypted only now, and stores them for the user page by page.
 * Idempotent: fetching the same range again updates the same rows. Exits 64 on bad arguments.
 */
import { upsertBars } from "../db/bars.ts";
import { getAccountByAlias } from "../db/accounts.ts";
import { getAccount } from "../db/executions.ts";
import { migrateUp } from "../db/migrate.ts";
import { openOperatorDb } from "../db/open.ts";
import { findUserByEmail } from "../db/users.ts";
import { createAlpacaData } from "../lib/alpaca_data.ts";
import { parseBarTime, parseTimeframe } from "../lib/bar_input.ts";
import { fail, parseFlags, print } from "../lib/cli.ts";
import { openCredentials } from "../lib/credentials.ts";
import { configuredKeyring } from "../lib/crypto.ts";
import { mapSymbol, SymbolError } from "../lib/symbols.ts";

const USAGE =
  "Usage: deno task bars:fetch --email <email> --account <alias> --symbol <symbol> --timeframe <1m|5m|15m|30m|1h|2h|4h|1d|1w> --from <ISO time> [--to <ISO time>]";

async function main(args: string[]) {
  const values = parseFlags(args, {
    email: {},
    account: {},
    symbol: {},
    timeframe: {},
    from: {},
    to: {},
  }, USAGE);
  if (!values.email || !values.account || !values.symbol || !values.timeframe || !values.from) {
    fail(USAGE, 64);
  }
  const timeframe = parseTimeframe(values.timeframe);
  if (timeframe === null) {
    fail(`Cannot fetch bars: "--timeframe" "${values.timeframe}" is unknown\n${USAGE}`, 64);
  }
  const from = parseBarTime(values.from, "ms");
  const to = values.to === undefined ? undefined : parseBarTime(values.to, "ms");
  if (from === null || to === null || /^\d+$/.test(values.from)) {
    fail(`Cannot fetch bars: "--from" and "--to" must be ISO 8601 times\n${USAGE}`, 64);
  }
  if (to && to <= from) fail(`Cannot fetch bars: "--to" must be after "--from"\n${USAGE}`, 64);
  let symbol: string;
  try {
    symbol = mapSymbol(values.symbol, { broker: "alpaca", now: new Date() }).symbol;
  } catch (error) {
    if (error instanceof SymbolError) fail(`Cannot fetch bars: ${error.message}`, 64);
    throw error;
  }
  const alias = values.account.trim().toLowerCase();

  const { config, db } = await openOperatorDb();
  let outcome: { pages: number; stored: number } | { error: string };
  try {
    await migrateUp(db);
    const user = await findUserByEmail(db, values.email);
    const row = user ? await getAccountByAlias(db, user.id, alias) : null;
    const account = row ? await getAccount(db, row.id) : null;
    if (!user) {
      outcome = { error: `Cannot fetch bars: no user has the email "${values.email.trim()}"` };
    } else if (!account) {
      outcome = { error: `Cannot fetch bars: ${user.email} has no broker account "${alias}"` };
    } else if (account.broker !== "alpaca" || !account.credentials) {
      outcome = {
        error: `Cannot fetch bars: account "${alias}" is not an Alpaca account with API keys`,
      };
    } else {
      const { keyId, secretKey } = await openCredentials(
        configuredKeyring(config),
        account.credentials,
      );
      const client = createAlpacaData({ keyId, secretKey, baseUrl: config.alpacaDataUrl });
      const key = { userId: user.id, symbol, timeframe, source: "alpaca" as const };
      let pages = 0, stored = 0;
      for await (const page of client.bars({ symbol, timeframe, from, to })) {
        pages++;
        if (page.length > 0) stored += await upsertBars(db, key, page);
      }
      outcome = { pages, stored };
    }
  } catch (error) {
    const message = (error as Error).message;
    outcome = {
      error: message.startsWith("Cannot ") ? message : `Cannot fetch bars: ${message}`,
    };
  } finally {
    await db.close();
  }
  if ("error" in outcome) fail(outcome.error, 1);
  print(
    `Fetched ${symbol} ${timeframe} from ${from.toISOString()}${
      to ? ` to ${to.toISOString()}` : ""
    }: ${outcome.stored} bars stored from ${outcome.pages} pages`,
  );
}

if (import.meta.main) await main(Deno.args);
