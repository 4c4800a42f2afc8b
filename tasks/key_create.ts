/**
 * `deno task key:create --email E [--name N] [--expires-days D]` — creates a webhook key for a
 * user. Only its SHA-256 is stored; the key itself is printed once, alone on the last line of
 * stdout, so scripts can take it with `tail -n 1`. Audited as `webhook_key.created` by
 * `operator`, who is not held to the per-user limit of active keys.
 */
import { openOperatorDb } from "../db/open.ts";
import { migrateUp } from "../db/migrate.ts";
import { findUserByEmail } from "../db/users.ts";
import { OPERATOR } from "../db/audit.ts";
import { createWebhookKey, type WebhookKeyRow } from "../db/webhook_keys.ts";
import { fail, parseFlags, print } from "../lib/cli.ts";
import { uuidv7 } from "../lib/ids.ts";
import { generateWebhookKey } from "../lib/webhook_key.ts";

const USAGE =
  "Usage: deno task key:create --email <email> [--name <name>] [--expires-days <days, default 180>]";
const DEFAULT_EXPIRES_DAYS = 180;
const MAX_EXPIRES_DAYS = 3650;
const DAY_MS = 86_400_000;

async function main(args: string[]) {
  const values = parseFlags(args, {
    email: {},
    name: { default: "default" },
    "expires-days": { default: String(DEFAULT_EXPIRES_DAYS) },
  }, USAGE);
  if (!values.email) fail(USAGE, 64);
  const name = values.name.trim();
  if (name.length < 1 || name.length > 100) {
    fail(`Cannot create key: "--name" must be 1 to 100 characters\n${USAGE}`, 64);
  }
  const days = values["expires-days"];
  if (!/^[1-9]\d*$/.test(days) || Number(days) > MAX_EXPIRES_DAYS) {
    fail(
      `Cannot create key: "--expires-days" must be a whole number from 1 to ${MAX_EXPIRES_DAYS}, got "${days}"\n${USAGE}`,
      64,
    );
  }

  const { db } = await openOperatorDb();
  const now = Date.now();
  let outcome: { row?: WebhookKeyRow; key?: string; email?: string; error?: string };
  try {
    await migrateUp(db);
    const user = await findUserByEmail(db, values.email);
    if (!user) {
      outcome = { error: `Cannot create key: no user has the email "${values.email.trim()}"` };
    } else {
      const generated = await generateWebhookKey();
      const row = await createWebhookKey(db, {
        userId: user.id,
        name,
        key: { id: uuidv7(now), prefix: generated.prefix, hash: generated.hash },
        expiresAt: new Date(now + Number(days) * DAY_MS),
        now: new Date(now),
        actor: OPERATOR,
        maxActive: Infinity,
      });
      outcome = { row, key: generated.key, email: user.email };
    }
  } catch (error) {
    outcome = { error: `Cannot create key: ${(error as Error).message}` };
  } finally {
    await db.close();
  }
  if (!outcome.row || !outcome.key) fail(outcome.error!, 1);
  const { row, key } = outcome;
  print(`Created webhook key "${row.name}" for ${outcome.email}`);
  print(`  id: ${row.id}`);
  print(`  prefix: ${row.prefix}`);
  print(`  expires: ${row.expiresAt?.toISOString() ?? "never"}`);
  print("Copy the key below now: it is shown only this once and cannot be recovered.");
  print(key);
}

if (import.meta.main) await main(Deno.args);
