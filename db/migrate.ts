/**
 * Plain SQL migrations: `db/migrations/NNNN_name.up.sql` and `NNNN_name.down.sql`. Each runs in
 * its own transaction under an advisory lock, so two instances starting at once migrate once.
 */
import type { Db, Tx } from "./client.ts";

/** One migration as read from disk. */
export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string;
  checksum: string;
}

/** A migration with whether (and when) it is applied. */
export interface MigrationState {
  version: number;
  name: string;
  appliedAt: Date | null;
}

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
const FILE = /^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$/;
// Any constant works; it only has to be the same for every instance.
const LOCK_ID = 7_260_001;

/** Reads every migration, checking that each has both halves and that versions are unique. */
export async function loadMigrations(dir: URL = MIGRATIONS_DIR): Promise<Migration[]> {
  const parts = new Map<number, { name: string; up?: string; down?: string }>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    const match = FILE.exec(entry.name);
    if (!match) {
      throw new Error(
        `Cannot load migration "${entry.name}": name must be NNNN_name.up.sql or NNNN_name.down.sql`,
      );
    }
    const [, v, name, half] = match as unknown as [string, string, string, "up" | "down"];
    const version = Number(v);
    const part = parts.get(version) ?? { name };
    if (part.name !== name) {
      throw new Error(`Cannot load migration ${version}: two names "${part.name}" and "${name}"`);
    }
    part[half] = await Deno.readTextFile(new URL(entry.name, dir));
    parts.set(version, part);
  }
  const migrations: Migration[] = [];
  for (const [version, { name, up, down }] of parts) {
    if (up === undefined || down === undefined) {
      throw new Error(
        `Cannot load migration ${version} "${name}": it needs both an up and a down file`,
      );
    }
    migrations.push({ version, name, up, down, checksum: await sha256(up) });
  }
  return migrations.sort((a, b) => a.version - b.version);
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function ensureTable(tx: Tx) {
  await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
}

async function applied(
  tx: Tx,
): Promise<Map<number, { name: string; checksum: string; applied_at: Date }>> {
  const rows = await tx.query<
    { version: number; name: string; checksum: string; applied_at: Date }
  >(
    "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
  );
  return new Map(rows.map((r) => [r.version, r]));
}

/** Options of {@linkcode migrateUp} and {@linkcode migrateDown}. */
export interface MigrateOptions {
  migrations?: Migration[];
  /** Called once per migration applied or reverted, for logging. */
  onStep?: (step: { direction: "up" | "down"; version: number; name: string; ms: number }) => void;
}

/** Applies every pending migration in order; returns the versions applied. */
export async function migrateUp(db: Db, options: MigrateOptions = {}): Promise<number[]> {
  const migrations = options.migrations ?? await loadMigrations();
  const done: number[] = [];
  for (const migration of migrations) {
    const ran = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [LOCK_ID]);
      await ensureTable(tx);
      const existing = (await applied(tx)).get(migration.version);
      if (existing) {
        if (existing.checksum !== migration.checksum) {
          throw new Error(
            `Cannot migrate: applied migration ${migration.version} "${migration.name}" was edited after it ran (checksum differs); add a new migration instead`,
          );
        }
        return false;
      }
      const started = performance.now();
      await execScript(tx, migration.up);
      await tx.query(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        [
          migration.version,
          migration.name,
          migration.checksum,
        ],
      );
      options.onStep?.({
        direction: "up",
        version: migration.version,
        name: migration.name,
        ms: performance.now() - started,
      });
      return true;
    });
    if (ran) done.push(migration.version);
  }
  return done;
}

/** Reverts the `steps` most recent migrations (all of them with `Infinity`); returns the versions reverted. */
export async function migrateDown(
  db: Db,
  steps = 1,
  options: MigrateOptions = {},
): Promise<number[]> {
  const migrations = new Map(
    (options.migrations ?? await loadMigrations()).map((m) => [m.version, m]),
  );
  const done: number[] = [];
  while (done.length < steps) {
    const reverted = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [LOCK_ID]);
      await ensureTable(tx);
      const versions = [...(await applied(tx)).keys()];
      const latest = versions.at(-1);
      if (latest === undefined) return undefined;
      const migration = migrations.get(latest);
      if (!migration) throw new Error(`Cannot revert migration ${latest}: its files are missing`);
      const started = performance.now();
      await execScript(tx, migration.down);
      await tx.query("DELETE FROM schema_migrations WHERE version = $1", [latest]);
      options.onStep?.({
        direction: "down",
        version: latest,
        name: migration.name,
        ms: performance.now() - started,
      });
      return latest;
    });
    if (reverted === undefined) break;
    done.push(reverted);
  }
  return done;
}

/** Lists every known migration with the time it was applied, or null when it is pending. */
export async function migrationStatus(db: Db, migrations?: Migration[]): Promise<MigrationState[]> {
  const all = migrations ?? await loadMigrations();
  const rows = await db.transaction(async (tx) => {
    await ensureTable(tx);
    return applied(tx);
  });
  return all.map((m) => ({
    version: m.version,
    name: m.name,
    appliedAt: rows.get(m.version)?.applied_at ?? null,
  }));
}

/** Versions applied in the database that no migration file describes (a newer release ran). */
export async function unknownVersions(db: Db, migrations?: Migration[]): Promise<number[]> {
  const known = new Set((migrations ?? await loadMigrations()).map((m) => m.version));
  const rows = await db.transaction(async (tx) => {
    await ensureTable(tx);
    return applied(tx);
  });
  return [...rows.keys()].filter((v) => !known.has(v));
}

/** Runs a multi-statement script as separate statements (extended protocol takes one at a time). */
async function execScript(tx: Tx, script: string) {
  for (const statement of splitStatements(script)) await tx.query(statement);
}

/**
 * Splits SQL on top-level semicolons, leaving those inside quotes, dollar-quoted bodies and
 * comments alone.
 */
export function splitStatements(script: string): string[] {
  const out: string[] = [];
  let current = "";
  let i = 0;
  while (i < script.length) {
    const ch = script[i]!;
    const rest = script.slice(i);
    if (rest.startsWith("--")) {
      const end = script.indexOf("\n", i);
      i = end === -1 ? script.length : end + 1;
      current += "\n";
      continue;
    }
    if (rest.startsWith("/*")) {
      const end = script.indexOf("*/", i + 2);
      i = end === -1 ? script.length : end + 2;
      current += " ";
      continue;
    }
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < script.length) {
        if (script[j] === ch) {
          if (script[j + 1] === ch) j += 2;
          else break;
        } else j++;
      }
      current += script.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const dollar = /^\$[A-Za-z_]*\$/.exec(rest);
    if (dollar) {
      const tag = dollar[0];
      const end = script.indexOf(tag, i + tag.length);
      const stop = end === -1 ? script.length : end + tag.length;
      current += script.slice(i, stop);
      i = stop;
      continue;
    }
    if (ch === ";") {
      if (current.trim()) out.push(current.trim());
      current = "";
      i++;
      continue;
    }
    current += ch;
    i++;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
