/**
 * Test databases on both engines. PostgreSQL: a fresh database per test on the server named by
 * TEST_DATABASE_URL, dropped afterwards. PGlite: cloned from a migrated snapshot that is built
 * once per migration set and cached on disk (a fresh PGlite costs seconds, a clone ~0.4 s).
 */
import postgres from "postgres";
import type { Db, DbEngine } from "../db/client.ts";
import { loadMigrations, migrateUp } from "../db/migrate.ts";
import { openPglite } from "../db/pglite.ts";
import { openPostgres } from "../db/postgres.ts";

/** The PostgreSQL server tests run against (trust auth, database `test` by default). */
export const TEST_DATABASE_URL = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";

/** Both engines; suites that must hold on both loop over this. */
export const ENGINES: readonly DbEngine[] = ["pglite", "postgres"];

/** A database for one test, removed when disposed. */
export interface TestDb extends AsyncDisposable {
  db: Db;
  /** The postgres:// URL of the database (PostgreSQL engine only). */
  url?: string;
  engine: DbEngine;
}

/** Options of {@linkcode createTestDb}. */
export interface TestDbOptions {
  /** Apply every migration first (default true). */
  migrate?: boolean;
}

/** Creates an isolated database on `engine`; `await using` drops it at the end of the test. */
export async function createTestDb(engine: DbEngine, options: TestDbOptions = {}): Promise<TestDb> {
  const migrate = options.migrate ?? true;
  if (engine === "pglite") {
    const db = await openPglite({ loadDataDir: await pgliteSnapshot(migrate) });
    return { db, engine, [Symbol.asyncDispose]: () => db.close() };
  }
  const { url, drop } = await createPostgresDatabase();
  const db = openPostgres(url, { poolSize: 4 });
  try {
    if (migrate) await migrateUp(db);
  } catch (error) {
    await db.close();
    await drop();
    throw error;
  }
  return {
    db,
    url,
    engine,
    async [Symbol.asyncDispose]() {
      await db.close();
      await drop();
    },
  };
}

/** Creates an empty database on the test server; `drop` removes it, connections and all. */
export async function createPostgresDatabase(): Promise<
  { url: string; drop: () => Promise<void> }
> {
  const name = `te_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } catch (error) {
    await admin.end();
    throw new Error(
      `Cannot create a test database on ${TEST_DATABASE_URL}: is PostgreSQL running? (.ci/run starts it)`,
      { cause: error },
    );
  }
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

async function pgliteSnapshot(migrated: boolean): Promise<Blob> {
  const migrations = await loadMigrations();
  const key = migrated ? migrations.map((m) => `${m.version}:${m.checksum}`).join(",") : "empty";
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`v1|${key}`));
  const hash = Array.from(
    new Uint8Array(digest).slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const path = `${tmpDir()}/trendedge-pglite-${hash}.tar`;
  try {
    return new Blob([await Deno.readFile(path)]);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const db = await openPglite();
  try {
    if (migrated) await migrateUp(db, { migrations });
    const bytes = new Uint8Array(await (await db.dump()).arrayBuffer());
    // Write then rename, so parallel test files never read a half-written snapshot.
    const partial = `${path}.${crypto.randomUUID()}.partial`;
    await Deno.writeFile(partial, bytes);
    await Deno.rename(partial, path);
    return new Blob([bytes]);
  } finally {
    await db.close();
  }
}

function tmpDir(): string {
  return Deno.env.get("TMPDIR") ?? "/tmp";
}
