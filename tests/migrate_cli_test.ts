/** `deno task migrate` as an operator runs it, against a real PostgreSQL and the embedded engine. */
import assert from "node:assert/strict";
import { loadMigrations } from "../db/migrate.ts";
import { createPostgresDatabase } from "./_db.ts";
import { runTask } from "./_process.ts";

function migrate(env: Record<string, string>, ...args: string[]) {
  return runTask(env, "migrate", ...args);
}

Deno.test("deno task migrate up, status, down all and up again on PostgreSQL", async () => {
  const database = await createPostgresDatabase();
  const env = { DATABASE_URL: database.url };
  const count = (await loadMigrations()).length;
  try {
    const pending = await migrate(env, "status");
    assert.equal(pending.code, 0, pending.stderr);
    assert.equal(pending.stdout.match(/pending/g)?.length, count);

    const up = await migrate(env, "up");
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, new RegExp(`Done: ${count} migration`));

    const again = await migrate(env, "up");
    assert.match(again.stdout, /Nothing to do/);

    const status = await migrate(env, "status");
    assert.equal(status.stdout.match(/applied \d{4}-/g)?.length, count);

    const down = await migrate(env, "down", "all");
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`Done: ${count} migration`));
    assert.equal((await migrate(env, "up")).code, 0);
  } finally {
    await database.drop();
  }
});

Deno.test("deno task migrate refuses bad arguments and bad configuration with a clear message", async () => {
  const bad = await migrate({}, "sideways");
  assert.equal(bad.code, 64);
  assert.match(bad.stderr, /Usage: deno task migrate/);
  const steps = await migrate({}, "down", "-3");
  assert.equal(steps.code, 64);
  assert.match(steps.stderr, /Cannot migrate down "-3"/);
  const config = await migrate({ DATABASE_URL: "mysql://x" }, "status");
  assert.equal(config.code, 78);
  assert.match(config.stderr, /"DATABASE_URL" must be a postgres/);
});

Deno.test("deno task migrate runs on the embedded database under DATA_DIR", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "trendedge-migrate-" });
  try {
    const up = await migrate({ DATA_DIR: dataDir }, "up");
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /PGlite at .*\/pglite/);
    const status = await migrate({ DATA_DIR: dataDir }, "status");
    assert.doesNotMatch(status.stdout, /pending/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
