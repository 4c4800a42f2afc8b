/**
 * A database dump taken while secrets are in use holds none of them in clear: not the broker key
 * id or secret (sealed with ENCRYPTION_KEY), not a webhook key, refresh token or password (stored
 * as hashes) — in any encoding a dump can show bytes in.
 */
import assert from "node:assert/strict";
import type { Db } from "../db/client.ts";
import { createTestApp } from "./_app.ts";
import { createTestDb } from "./_db.ts";
import { runTask } from "./_process.ts";

const EMAIL = "dump-admin@example.com";
const PASSWORD = "dump-test-passphrase-0123";
const FIRST = {
  key_id: "PKDUMPFIRST000000001",
  secret_key: "dump-first-secret-0123456789abcdefgh",
};
const SECOND = {
  key_id: "PKDUMPSECOND00000002",
  secret_key: "dump-second-secret-0123456789abcdef",
};

/** The database as text: `pg_dump` when it is installed, else every row of every table. */
async function dump(url: string, db: Db): Promise<{ how: string; text: string }> {
  try {
    const out = await new Deno.Command("pg_dump", {
      args: ["--no-owner", "--no-privileges", url],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code === 0) return { how: "pg_dump", text: new TextDecoder().decode(out.stdout) };
    // A pg_dump older than the server refuses to run; the SQL dump below still sees every row.
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const tables = await db.query<{ name: string }>(
    `SELECT quote_ident(table_name) AS name FROM information_schema.tables
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const lines: string[] = [];
  for (const { name } of tables) {
    lines.push(`-- ${name}`);
    const rows = await db.query<{ row: string }>(
      `SELECT row_to_json(t)::text AS row FROM ${name} t`,
    );
    for (const { row } of rows) lines.push(row);
  }
  return { how: "SQL", text: lines.join("\n") };
}

/** A secret as a dump could show it: as text, as the hex of a bytea, as base64. */
function encodings(secret: string): string[] {
  const bytes = new TextEncoder().encode(secret);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return [secret, hex, hex.toUpperCase(), btoa(String.fromCharCode(...bytes))];
}

Deno.test("a database dump holds no broker credential, webhook key, refresh token or password in clear", async () => {
  await using t = await createTestDb("postgres");
  await using test = createTestApp({ db: t.db });
  const json = async (method: string, path: string, body: unknown, token?: string) => {
    const res = await test.app.request(path, {
      method,
      headers: {
        "Content-Type": "application/json",
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : null };
  };

  const setup = await json("POST", "/api/v1/auth/setup", { email: EMAIL, password: PASSWORD });
  assert.equal(setup.status, 201, setup.text);
  const { access_token: token, refresh_token: refreshToken } = setup.body;
  assert.ok(token && refreshToken);

  const keys: string[] = [];
  for (const name of ["tradingview", "backup"]) {
    const created = await runTask(
      { APP_ENV: "test", DATABASE_URL: t.url! },
      "key:create",
      "--email",
      EMAIL,
      "--name",
      name,
    );
    assert.equal(created.code, 0, created.stderr);
    keys.push(created.stdout.trimEnd().split("\n").at(-1)!);
  }

  const account = await json("POST", "/api/v1/accounts", {
    alias: "alpaca-dump",
    broker: "alpaca",
    credentials: FIRST,
  }, token);
  assert.equal(account.status, 201, account.text);
  const patched = await json("PATCH", "/api/v1/accounts/alpaca-dump", {
    credentials: SECOND,
  }, token);
  assert.equal(patched.status, 200, patched.text);
  // A signal carries the key in its body; what is stored has it blanked out.
  const signal = await json("POST", "/api/v1/webhooks/tradingview", {
    key: keys[0],
    ticker: "AAPL",
    action: "buy",
    quantity: 1,
    price: 190.25,
    account: "alpaca-dump",
  });
  assert.equal(signal.status, 202, signal.text);

  const { how, text } = await dump(t.url!, t.db);
  // The dump is a real one: it holds the rows the secrets belong to.
  for (const visible of ["alpaca-dump", EMAIL, keys[0]!.slice(0, 12), signal.body.signal_id]) {
    assert.ok(text.includes(visible), `the ${how} dump holds ${visible}`);
  }
  const secrets = [
    FIRST.key_id,
    FIRST.secret_key,
    SECOND.key_id,
    SECOND.secret_key,
    PASSWORD,
    refreshToken,
    ...keys,
    // Past the visible prefix: the part of a webhook key that is never stored.
    ...keys.map((k) => k.slice(12)),
  ];
  for (const secret of secrets) {
    for (const form of encodings(secret)) {
      assert.ok(!text.includes(form), `the ${how} dump holds a secret in clear: ${form}`);
    }
  }
});
