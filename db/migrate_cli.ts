/**
 * `deno task migrate [up | down [N|all] | status]` — runs against DATABASE_URL, or the embedded
 * database under DATA_DIR when it is unset. Production runs `up` as its release step.
 */
import { fail, print } from "../lib/cli.ts";
import { describeDatabase, openOperatorDb } from "./open.ts";
import { migrateDown, migrateUp, migrationStatus, unknownVersions } from "./migrate.ts";

const USAGE = "Usage: deno task migrate [up | down [N|all] | status]";

async function main(args: string[]) {
  const [command = "up", arg] = args;
  if (!["up", "down", "status"].includes(command) || args.length > 2) fail(USAGE, 64);
  let steps = 1;
  if (command === "down" && arg !== undefined) {
    if (arg === "all") steps = Infinity;
    else if (/^[1-9]\d*$/.test(arg)) steps = Number(arg);
    else {fail(
        `Cannot migrate down "${arg}": give a positive number of steps or "all"\n${USAGE}`,
        64,
      );}
  }

  const { config, db } = await openOperatorDb();
  const target = describeDatabase(config);
  try {
    if (command === "status") {
      print(`Migrations on ${target}:`);
      for (const m of await migrationStatus(db)) {
        const when = m.appliedAt ? `applied ${m.appliedAt.toISOString()}` : "pending";
        print(`  ${String(m.version).padStart(4, "0")} ${m.name.padEnd(32)} ${when}`);
      }
      const unknown = await unknownVersions(db);
      if (unknown.length > 0) {
        print(`  also applied, unknown to this release: ${unknown.join(", ")}`);
      }
      return;
    }
    const onStep = (s: { direction: string; version: number; name: string; ms: number }) =>
      print(
        `  ${s.direction === "up" ? "applied " : "reverted"} ${
          String(s.version).padStart(4, "0")
        } ${s.name} (${Math.round(s.ms)} ms)`,
      );
    print(`Migrating ${command} on ${target}`);
    const done = command === "up"
      ? await migrateUp(db, { onStep })
      : await migrateDown(db, steps, { onStep });
    print(done.length === 0 ? "Nothing to do" : `Done: ${done.length} migration(s)`);
  } catch (error) {
    fail(`Migration failed: ${(error as Error).message}`);
  } finally {
    await db.close();
  }
}

if (import.meta.main) await main(Deno.args);
