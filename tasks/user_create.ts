/**
 * `deno task user:create --email E --password P` — creates a user with their `paper` account.
 * The first user ever is the admin. Runs against DATABASE_URL, or the embedded database under
 * DATA_DIR when it is unset, migrating it first so a fresh data dir works.
 */
import { OPERATOR } from "../db/audit.ts";
import { openOperatorDb } from "../db/open.ts";
import { migrateUp } from "../db/migrate.ts";
import { createUser, DuplicateEmailError, InvalidEmailError } from "../db/users.ts";
import { fail, parseFlags, print } from "../lib/cli.ts";
import { PasswordPolicyError } from "../lib/password.ts";

const USAGE = "Usage: deno task user:create --email <email> --password <password>";

async function main(args: string[]) {
  const values = parseFlags(args, { email: {}, password: {} }, USAGE);
  if (!values.email || !values.password) fail(USAGE, 64);

  const { db } = await openOperatorDb();
  let outcome: { user?: Awaited<ReturnType<typeof createUser>>; error?: string; code?: number };
  try {
    await migrateUp(db);
    outcome = {
      user: await createUser(db, {
        email: values.email,
        password: values.password,
        actor: OPERATOR,
      }),
    };
  } catch (error) {
    if (error instanceof DuplicateEmailError) outcome = { error: error.message, code: 1 };
    else if (error instanceof InvalidEmailError || error instanceof PasswordPolicyError) {
      outcome = { error: error.message, code: 65 };
    } else outcome = { error: `Cannot create user: ${(error as Error).message}`, code: 1 };
  } finally {
    await db.close();
  }
  if (!outcome.user) fail(outcome.error!, outcome.code);
  const { user } = outcome;
  print(`Created user ${user.id}`);
  print(`  email: ${user.email}`);
  print(`  role: ${user.role}`);
  print(`  paper account: paper`);
}

if (import.meta.main) await main(Deno.args);
