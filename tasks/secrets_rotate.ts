/**
 * `deno task secrets:rotate [--dry-run]` — re-encrypts every broker credential and notification channel secret under the current
 * ENCRYPTION_KEY (version ENCRYPTION_KEY_VERSION), reading older values with
 * ENCRYPTION_KEY_PREVIOUS (version ENCRYPTION_KEY_VERSION − 1). All in one transaction: every
 * value is checked to decrypt, and either all are re-sealed or none is. Prints the values per
 * key version before and after; `--dry-run` only checks and reports. Exits 1, changing nothing,
 * when a value is sealed with a version it has no key for.
 */
import { describeDatabase, openOperatorDb } from "../db/open.ts";
import { rotateCredentials, type RotationReport, type VersionCounts } from "../db/secrets.ts";
import { fail, parseFlags, print } from "../lib/cli.ts";
import { configuredKeyring } from "../lib/crypto.ts";

const USAGE = "Usage: deno task secrets:rotate [--dry-run]";

async function main(args: string[]) {
  const { "dry-run": dryRun } = parseFlags(args, { "dry-run": { boolean: true } }, USAGE);
  const { config, db } = await openOperatorDb();
  let outcome: { report?: RotationReport; error?: string };
  try {
    outcome = { report: await rotateCredentials(db, configuredKeyring(config), { dryRun }) };
  } catch (error) {
    const message = (error as Error).message;
    outcome = {
      error: message.startsWith("Cannot rotate secrets")
        ? message
        : `Cannot rotate secrets: ${message}`,
    };
  } finally {
    await db.close();
  }
  if (!outcome.report) fail(`${outcome.error!}\nNothing was changed.`, 1);
  const { report } = outcome;
  print(
    `Broker credentials and notification channel secrets in ${
      describeDatabase(config)
    }, by key version`,
  );
  print(`  before: ${counts(report.before)}`);
  if (report.dryRun) {
    print(
      `Dry run: every value decrypts; ${report.rotated} would be re-encrypted under key version ${report.version}.`,
    );
    print("Nothing was changed.");
    return;
  }
  print(`  after:  ${counts(report.after)}`);
  print(`Re-encrypted ${report.rotated} value(s) under key version ${report.version}.`);
  if (config.encryptionKeyPrevious) {
    print("Every value is sealed with the current key: ENCRYPTION_KEY_PREVIOUS can be removed.");
  }
}

function counts(byVersion: VersionCounts): string {
  const entries = Object.entries(byVersion).sort(([a], [b]) => Number(a) - Number(b));
  if (entries.length === 0) return "none";
  return entries.map(([version, n]) => `v${version}: ${n}`).join(", ");
}

if (import.meta.main) await main(Deno.args);
