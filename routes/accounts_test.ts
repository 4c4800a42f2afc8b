import assert from "node:assert/strict";
import { memoryBreakerStore } from "../db/breaker_store.ts";
import { createTestApp } from "../tests/_app.ts";
import { configuredKeyring } from "../lib/crypto.ts";
import { openCredentials } from "../lib/credentials.ts";
import { uuidv7 } from "../lib/ids.ts";
import { createTestDb, ENGINES, type TestDb } from "../tests/_db.ts";
import { accessTokenFor, insertTrader } from "../tests/_fixtures.ts";

Deno.test("GET /api/v1/accounts shows each of the caller's accounts with its kill switch and breaker state", async () => {
  await using t = await createTestDb("pglite");
  const mine = await insertTrader(t.db);
  await insertTrader(t.db); // another user, whose account must not show
  const breakers = memoryBreakerStore();
  await using test = createTestApp({ db: t.db, breakers });
  // The executor stores the breaker's snapshot on every change; open it for 10 minutes.
  await breakers.save(mine.accountId, { failures: [], openUntil: test.clock.now() + 600_000 });
  await t.db.query("UPDATE broker_accounts SET kill_switch = true WHERE id = $1", [mine.accountId]);
  const { token } = await accessTokenFor(t.db, { id: mine.userId, role: "trader" }, {
    secret: test.config.jwtSecret,
    now: test.clock.now(),
  });
  const get = async () => {
    const res = await test.app.request("/api/v1/accounts", {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    return (await res.json()).data as Array<Record<string, unknown>>;
  };
  const [account, ...others] = await get();
  assert.deepEqual(others, [], "another user's account never shows");
  assert.deepEqual(
    {
      alias: account?.alias,
      broker: account?.broker,
      kill: account?.kill_switch,
      breaker: account?.breaker,
    },
    { alias: "paper", broker: "paper", kill: true, breaker: "open" },
  );
  await test.clock.advance(600_000);
  assert.equal((await get())[0]?.breaker, "half_open", "after the cooldown one probe may pass");
  assert.equal((await test.app.request("/api/v1/accounts")).status, 401);
});

const ANN_KEY_ID = "PKANNKEYID00000000A1";
const ANN_SECRET = "ann-alpaca-secret-0123456789abcdefghij";
const NEW_KEY_ID = "PKANNKEYID00000000B2";
const NEW_SECRET = "ann-rotated-secret-9876543210zyxwvuts";

/** A test app with two traders, Ann and Bob, and a JSON client acting as either. */
async function accountsSetup(t: TestDb) {
  const test = createTestApp({ db: t.db });
  const trader = async () => {
    const fixture = await insertTrader(t.db);
    const { token } = await accessTokenFor(t.db, { id: fixture.userId, role: "trader" }, {
      secret: test.config.jwtSecret,
      now: test.clock.now(),
    });
    return { ...fixture, token };
  };
  const ann = await trader();
  const bob = await trader();
  /** Every response text seen, to check that no secret ever left. */
  const seen: string[] = [];
  const call = async (
    who: { token: string },
    method: string,
    path: string,
    body?: unknown,
  ) => {
    const res = await test.app.request(path, {
      method,
      headers: {
        Authorization: `Bearer ${who.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    seen.push(text);
    return {
      status: res.status,
      headers: res.headers,
      text,
      // deno-lint-ignore no-explicit-any
      body: text ? JSON.parse(text) as any : null,
    };
  };
  const sealed = async (userId: string, alias: string) => {
    const [row] = await t.db.query<{ id: string; credentials: Uint8Array | null }>(
      "SELECT id, credentials FROM broker_accounts WHERE user_id = $1 AND alias = $2",
      [userId, alias],
    );
    return row;
  };
  const audits = () =>
    t.db.query<
      { action: string; actorId: string | null; targetId: string; data: Record<string, unknown> }
    >(
      `SELECT action, actor_id AS "actorId", target_id AS "targetId", data FROM audit_log
       WHERE action LIKE 'broker_account.%' ORDER BY id`,
    );
  return { test, ann, bob, call, seen, sealed, audits };
}

function assertNoSecret(texts: string[], secrets: string[]) {
  for (const text of texts) {
    for (const secret of secrets) assert.ok(!text.includes(secret), `leaked in: ${text}`);
  }
}

for (const engine of ENGINES) {
  Deno.test(`accounts: create, read, update and delete an Alpaca account, credentials sealed and never returned (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const { test, ann, call, seen, sealed, audits } = await accountsSetup(t);
    await using _app = test;

    const created = await call(ann, "POST", "/api/v1/accounts", {
      alias: "alpaca-ann",
      broker: "alpaca",
      credentials: { key_id: ANN_KEY_ID, secret_key: ANN_SECRET },
      risk: { max_order_quantity: 10, allowed_symbols: ["AAPL"] },
      symbol_map: { "NQ1!": "MNQZ6" },
      micro_futures: true,
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.get("location"), "/api/v1/accounts/alpaca-ann");
    const { created_at, ...rest } = created.body;
    assert.ok(!Number.isNaN(Date.parse(created_at)));
    assert.deepEqual(rest, {
      alias: "alpaca-ann",
      broker: "alpaca",
      live: false,
      kill_switch: false,
      breaker: "closed",
      has_credentials: true,
      symbol_map: { "NQ1!": "MNQZ6" },
      micro_futures: true,
      risk: { max_order_quantity: 10, allowed_symbols: ["AAPL"] },
      paper: {},
    });

    // Stored sealed under the current key version; the plaintext is not in the bytes.
    const row = await sealed(ann.userId, "alpaca-ann");
    assert.ok(row?.credentials instanceof Uint8Array);
    const bytes = new TextDecoder("latin1").decode(row.credentials);
    assert.ok(!bytes.includes(ANN_KEY_ID) && !bytes.includes(ANN_SECRET));
    const keyring = configuredKeyring(test.config);
    assert.equal(keyring.versionOf(row.credentials), test.config.encryptionKeyVersion);
    assert.deepEqual(await openCredentials(keyring, row.credentials), {
      keyId: ANN_KEY_ID,
      secretKey: ANN_SECRET,
    });

    const list = await call(ann, "GET", "/api/v1/accounts");
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.data.map((a: { alias: string }) => a.alias), [
      "alpaca-ann",
      "paper",
    ]);
    const one = await call(ann, "GET", "/api/v1/accounts/alpaca-ann");
    assert.equal(one.status, 200);
    assert.equal(one.body.has_credentials, true);
    assert.equal((await call(ann, "GET", "/api/v1/accounts/paper")).body.has_credentials, false);

    // New keys and risk limits: re-sealed, and the executor is asked to restart.
    const patched = await call(ann, "PATCH", "/api/v1/accounts/alpaca-ann", {
      credentials: { key_id: NEW_KEY_ID, secret_key: NEW_SECRET },
      risk: { max_order_quantity: 3 },
    });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual(patched.body.risk, { max_order_quantity: 3 });
    assert.equal(patched.body.symbol_map["NQ1!"], "MNQZ6", "fields left out stay");
    const resealed = await sealed(ann.userId, "alpaca-ann");
    assert.deepEqual(await openCredentials(keyring, resealed!.credentials!), {
      keyId: NEW_KEY_ID,
      secretKey: NEW_SECRET,
    });
    assert.deepEqual(test.changedAccounts, [row.id]);

    // Going live is explicit and takes the live account's keys in the same request.
    const liveOnly = await call(ann, "PATCH", "/api/v1/accounts/alpaca-ann", { live: true });
    assert.equal(liveOnly.status, 400, liveOnly.text);
    assert.equal(liveOnly.body.error.details[0].field, "credentials");
    const live = await call(ann, "PATCH", "/api/v1/accounts/alpaca-ann", {
      live: true,
      credentials: { key_id: ANN_KEY_ID, secret_key: ANN_SECRET },
    });
    assert.equal(live.status, 200, live.text);
    assert.equal(live.body.live, true);
    assert.ok(test.lines.some((l) => l.message === "Broker account switched to live trading"));
    const same = await call(ann, "PATCH", "/api/v1/accounts/alpaca-ann", { live: true });
    assert.equal(same.status, 200, "staying live needs no keys");

    const deleted = await call(ann, "DELETE", "/api/v1/accounts/alpaca-ann");
    assert.equal(deleted.status, 204);
    assert.equal(deleted.text, "");
    assert.equal((await call(ann, "GET", "/api/v1/accounts/alpaca-ann")).status, 404);
    assert.equal((await call(ann, "DELETE", "/api/v1/accounts/alpaca-ann")).status, 404);
    assert.equal(test.changedAccounts.at(-1), row.id, "a deleted account's executor stops");

    const entries = await audits();
    assert.deepEqual(entries.map((e) => [e.action, e.targetId, e.actorId]), [
      ["broker_account.created", row.id, ann.userId],
      ["broker_account.updated", row.id, ann.userId],
      ["broker_account.updated", row.id, ann.userId],
      ["broker_account.updated", row.id, ann.userId],
      ["broker_account.deleted", row.id, ann.userId],
    ]);
    assert.deepEqual(entries[0]!.data.fields, [
      "credentials",
      "symbol_map",
      "micro_futures",
      "risk",
    ]);
    assert.deepEqual(entries[1]!.data.fields, ["credentials", "risk"]);
    assert.deepEqual(entries[2]!.data, {
      alias: "alpaca-ann",
      fields: ["live", "credentials"],
      live: true,
      previous_live: false,
    });

    // No response, audit entry or log line ever carried a key.
    const secrets = [ANN_KEY_ID, ANN_SECRET, NEW_KEY_ID, NEW_SECRET];
    assertNoSecret(seen, secrets);
    assertNoSecret(entries.map((e) => JSON.stringify(e)), secrets);
    assertNoSecret(test.lines.map((l) => JSON.stringify(l)), secrets);
  });

  Deno.test(`accounts: another user's account is 404 on read, update and delete; bad aliases never 500 (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const { test, ann, bob, call, sealed } = await accountsSetup(t);
    await using _app = test;
    const body = {
      alias: "ann-only",
      broker: "alpaca",
      credentials: { key_id: ANN_KEY_ID, secret_key: ANN_SECRET },
    };
    assert.equal((await call(ann, "POST", "/api/v1/accounts", body)).status, 201);
    const before = await sealed(ann.userId, "ann-only");

    for (
      const [method, payload] of [
        ["GET", undefined],
        ["PATCH", { risk: { max_order_quantity: 1 } }],
        ["PATCH", { credentials: { key_id: "PKBOB", secret_key: "bob-secret" } }],
        ["DELETE", undefined],
      ] as const
    ) {
      const res = await call(bob, method, "/api/v1/accounts/ann-only", payload);
      assert.equal(res.status, 404, `${method}: ${res.text}`);
      assert.equal(res.body.error.code, "NOT_FOUND");
    }
    const bobs = await call(bob, "GET", "/api/v1/accounts");
    assert.deepEqual(bobs.body.data.map((a: { alias: string }) => a.alias), ["paper"]);
    const after = await sealed(ann.userId, "ann-only");
    assert.deepEqual(after, before, "Ann's account is untouched");
    assert.deepEqual(test.changedAccounts, []);

    // Aliases are per user: Bob may have his own "ann-only".
    const bobsOwn = await call(bob, "POST", "/api/v1/accounts", {
      ...body,
      credentials: { key_id: "PKBOB", secret_key: "bob-secret" },
    });
    assert.equal(bobsOwn.status, 201, bobsOwn.text);

    for (const alias of ["Bad", "-lead", "a".repeat(41), "a%20b", "a%2Fb", "..", "%00", "x;drop"]) {
      for (const method of ["GET", "PATCH", "DELETE"]) {
        const res = await call(
          ann,
          method,
          `/api/v1/accounts/${alias}`,
          method === "PATCH" ? { micro_futures: true } : undefined,
        );
        assert.ok(res.status === 400 || res.status === 404, `${method} ${alias}: ${res.status}`);
      }
    }
  });

  Deno.test(`accounts: validation, conflicting aliases, and accounts that traded cannot be deleted (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const { test, ann, call, seen, audits } = await accountsSetup(t);
    await using _app = test;
    const alpaca = (extra: Record<string, unknown> = {}) => ({
      alias: "alpaca-1",
      broker: "alpaca",
      credentials: { key_id: ANN_KEY_ID, secret_key: ANN_SECRET },
      ...extra,
    });
    const invalid = async (
      body: unknown,
      field: string,
      method = "POST",
      path = "/api/v1/accounts",
    ) => {
      const res = await call(ann, method, path, body);
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
      assert.equal(res.body.error.code, "VALIDATION_ERROR");
      const fields = res.body.error.details.map((d: { field?: string }) => d.field);
      assert.ok(fields.includes(field), `${field} in ${JSON.stringify(fields)}`);
    };
    await invalid({ alias: "alpaca-1", broker: "alpaca" }, "credentials");
    await invalid(alpaca({ alias: "Not An Alias" }), "alias");
    await invalid(alpaca({ broker: "ibkr" }), "broker");
    await invalid(alpaca({ live: "yes" }), "live");
    await invalid(alpaca({ paper: { slippage_bps: 1 } }), "paper");
    await invalid(alpaca({ risk: { max_order_quantity: -1 } }), "risk.max_order_quantity");
    await invalid(alpaca({ risk: { max_orders: 1 } }), "risk");
    await invalid(alpaca({ symbol_map: { AAPL: 1 } }), "symbol_map.AAPL");
    await invalid(alpaca({ credentials: { key_id: ANN_KEY_ID } }), "credentials.secret_key");
    await invalid(
      alpaca({ credentials: { key_id: ANN_KEY_ID, secret_key: "has a space in-the-secret" } }),
      "credentials.secret_key",
    );
    await invalid({ alias: "p2", broker: "paper", live: true }, "live");
    await invalid(
      { alias: "p2", broker: "paper", credentials: { key_id: "a", secret_key: "b" } },
      "credentials",
    );
    assertNoSecret(seen, [ANN_SECRET, "has a space in-the-secret"]);

    assert.equal((await call(ann, "POST", "/api/v1/accounts", alpaca())).status, 201);
    const again = await call(ann, "POST", "/api/v1/accounts", alpaca());
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "CONFLICT");
    assert.match(again.body.error.message, /Cannot create account "alpaca-1"/);
    assert.equal(
      (await call(ann, "POST", "/api/v1/accounts", alpaca({ alias: "paper" }))).status,
      409,
    );

    // More paper accounts, with their own settings.
    const paper2 = await call(ann, "POST", "/api/v1/accounts", {
      alias: "paper-2",
      broker: "paper",
      paper: { slippage_bps: 5, starting_cash: 50_000 },
    });
    assert.equal(paper2.status, 201, paper2.text);
    assert.deepEqual(
      [paper2.body.has_credentials, paper2.body.live, paper2.body.paper],
      [false, false, { slippage_bps: 5, starting_cash: 50_000 }],
    );
    const patch = "/api/v1/accounts/paper-2";
    const empty = await call(ann, "PATCH", patch, {});
    assert.equal(empty.status, 400);
    assert.match(empty.body.error.message, /nothing to change/);
    await invalid({ credentials: { key_id: "a", secret_key: "b" } }, "credentials", "PATCH", patch);
    await invalid({ live: true }, "live", "PATCH", patch);
    await invalid({ paper: { fee_bps: 5000 } }, "paper.fee_bps", "PATCH", patch);
    for (const field of [{ alias: "renamed" }, { broker: "alpaca" }]) {
      const res = await call(ann, "PATCH", patch, field);
      assert.equal(res.status, 400, `alias and broker cannot change: ${res.text}`);
    }
    await invalid({ paper: { fee_bps: 1 } }, "paper", "PATCH", "/api/v1/accounts/alpaca-1");
    const settings = await call(ann, "PATCH", patch, { paper: { fee_bps: 1 } });
    assert.equal(settings.status, 200);
    assert.deepEqual(settings.body.paper, { fee_bps: 1 });

    // The paper account stays; an account with orders or an open position keeps its history.
    const paper = await call(ann, "DELETE", "/api/v1/accounts/paper");
    assert.equal(paper.status, 409);
    assert.match(paper.body.error.message, /Cannot delete account "paper"/);
    const [{ id: paper2Id }] = await t.db.query<{ id: string }>(
      "SELECT id FROM broker_accounts WHERE user_id = $1 AND alias = 'paper-2'",
      [ann.userId],
    ) as [{ id: string }];
    await t.db.query(
      `INSERT INTO orders (id, user_id, account_id, client_order_id, symbol, side, quantity,
         order_type, time_in_force, status)
       VALUES ($1, $2, $3, $4, 'AAPL', 'buy', 1, 'market', 'day', 'filled')`,
      [uuidv7(), ann.userId, paper2Id, uuidv7()],
    );
    const traded = await call(ann, "DELETE", patch);
    assert.equal(traded.status, 409, traded.text);
    assert.match(traded.body.error.message, /1 order\(s\).*kill switch/);
    const [{ id: alpacaId }] = await t.db.query<{ id: string }>(
      "SELECT id FROM broker_accounts WHERE user_id = $1 AND alias = 'alpaca-1'",
      [ann.userId],
    ) as [{ id: string }];
    await t.db.query(
      `INSERT INTO positions (account_id, symbol, user_id, quantity, average_price)
       VALUES ($1, 'AAPL', $2, 2, 100)`,
      [alpacaId, ann.userId],
    );
    const open = await call(ann, "DELETE", "/api/v1/accounts/alpaca-1");
    assert.equal(open.status, 409);
    assert.match(open.body.error.message, /1 open position\(s\)/);
    assert.equal((await call(ann, "GET", "/api/v1/accounts/alpaca-1")).status, 200);
    assert.deepEqual(
      (await audits()).map((e) => e.action),
      ["broker_account.created", "broker_account.created", "broker_account.updated"],
      "refused changes leave no audit entry",
    );
  });
}
