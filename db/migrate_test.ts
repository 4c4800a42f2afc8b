import assert from "node:assert/strict";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import {
  loadMigrations,
  migrateDown,
  migrateUp,
  migrationStatus,
  splitStatements,
} from "./migrate.ts";

async function tables(db: import("./client.ts").Db): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
  );
  return rows.map((r) => r.name);
}

for (const engine of ENGINES) {
  Deno.test(`migrations on ${engine} go up, down to zero and up again`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const migrations = await loadMigrations();
    assert.ok(migrations.length >= 1);

    const up = await migrateUp(t.db);
    assert.deepEqual(up, migrations.map((m) => m.version));
    const schema = await tables(t.db);
    assert.ok(schema.includes("queue_jobs"), `tables after up: ${schema}`);
    assert.deepEqual(await migrateUp(t.db), [], "a second up applies nothing");

    const down = await migrateDown(t.db, Infinity);
    assert.deepEqual(down, migrations.map((m) => m.version).reverse());
    assert.deepEqual(
      await tables(t.db),
      ["schema_migrations"],
      "down to zero leaves only the ledger",
    );
    assert.ok((await migrationStatus(t.db)).every((s) => s.appliedAt === null));

    assert.deepEqual(await migrateUp(t.db), migrations.map((m) => m.version));
    assert.deepEqual(await tables(t.db), schema);
    assert.ok((await migrationStatus(t.db)).every((s) => s.appliedAt instanceof Date));
  });

  Deno.test(`migrations on ${engine} refuse an applied migration whose file was edited`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const migrations = await loadMigrations();
    await migrateUp(t.db, { migrations });
    const edited = migrations.map((m, i) => i === 0 ? { ...m, checksum: "edited" } : m);
    await assert.rejects(migrateUp(t.db, { migrations: edited }), /was edited after it ran/);
  });

  Deno.test(`a failing migration on ${engine} leaves nothing half-applied`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const broken = [{
      version: 1,
      name: "broken",
      up: "CREATE TABLE half (id int); SELECT * FROM no_such_table;",
      down: "DROP TABLE half;",
      checksum: "x",
    }];
    await assert.rejects(migrateUp(t.db, { migrations: broken }), /no_such_table/);
    assert.ok(!(await tables(t.db)).includes("half"));
    assert.deepEqual((await migrationStatus(t.db, broken)).map((s) => s.appliedAt), [null]);
  });

  Deno.test(`migrateDown on ${engine} reverts n steps, newest first`, async () => {
    await using t = await createTestDb(engine, { migrate: false });
    const migrations = [1, 2, 3].map((version) => ({
      version,
      name: `t${version}`,
      up: `CREATE TABLE t${version} (id int);`,
      down: `DROP TABLE t${version};`,
      checksum: String(version),
    }));
    await migrateUp(t.db, { migrations });
    assert.deepEqual(await migrateDown(t.db, 2, { migrations }), [3, 2]);
    assert.deepEqual(await tables(t.db), ["schema_migrations", "t1"]);
  });
}

Deno.test("two instances migrating the same PostgreSQL at once apply each migration once", async () => {
  await using t = await createTestDb("postgres", { migrate: false });
  const { openPostgres } = await import("./postgres.ts");
  const other = openPostgres(t.url!, { poolSize: 2 });
  try {
    const [a, b] = await Promise.all([migrateUp(t.db), migrateUp(other)]);
    const all = (await loadMigrations()).map((m) => m.version);
    assert.deepEqual([...a, ...b].sort(), all.sort());
  } finally {
    await other.close();
  }
});

Deno.test("splitStatements keeps semicolons inside strings, dollar quotes and comments", () => {
  const script = `
    CREATE TABLE a (t text DEFAULT 'x;y'); -- a comment; with a semicolon
    /* block; comment */
    CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
    INSERT INTO a VALUES ('it''s; fine')`;
  const parts = splitStatements(script);
  assert.equal(parts.length, 3);
  assert.match(parts[0]!, /'x;y'/);
  assert.match(parts[1]!, /\$\$ SELECT 1; \$\$/);
  assert.match(parts[2]!, /'it''s; fine'/);
});
