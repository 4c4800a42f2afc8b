/**
 * `deno task doctor` — checks that trendedge can run here: the configuration and its secrets, the
 * database and its migrations, Deno KV, Redis, and that broker credentials open with the
 * configured keys (no broker is called). One line per check — ok, warn, skip or FAIL — then a
 * summary. Exit 0 when nothing failed, 1 when a check failed, 78 when the configuration is
 * invalid. It creates nothing that `deno task start` would not (a missing embedded database is
 * reported, not created).
 */
import {
  type Config,
  ConfigError,
  developmentSecrets,
  environment,
  loadConfig,
  VERSION,
} from "../config.ts";
import { type Db, openDb } from "../db/client.ts";
import { alpacaCredentials, serverVersion } from "../db/doctor.ts";
import { migrationStatus, unknownVersions } from "../db/migrate.ts";
import { databaseOptions, describeDatabase } from "../db/open.ts";
import { kvPath, pgliteDir } from "../db/paths.ts";
import { DataDirInUseError } from "../db/pglite.ts";
import { createUpstashRedis } from "../lib/rate_limit_upstash.ts";
import { type NotifyTarget, probeNotificationTarget } from "../lib/notify.ts";
import { parseFlags, print } from "../lib/cli.ts";
import { type Cipher, createCipher } from "../lib/crypto.ts";

const USAGE = "Usage: deno task doctor";
const TIMEOUT_MS = 5_000;

type Status = "ok" | "warn" | "skip" | "FAIL";

const results: Status[] = [];

function report(status: Status, check: string, detail: string): void {
  results.push(status);
  print(`${status.padEnd(4)}  ${check.padEnd(10)}  ${detail}`);
}

/** Prints the summary and exits: 78 for a bad configuration, 1 when a check failed, else 0. */
function finish(configInvalid = false): never {
  const count = (s: Status) => results.filter((r) => r === s).length;
  const failed = count("FAIL");
  print(
    `Summary: ${count("ok")} ok, ${count("warn")} warning(s), ${
      count("skip")
    } skipped, ${failed} failed`,
  );
  Deno.exit(configInvalid ? 78 : failed > 0 ? 1 : 0);
}

/** An error's message without any connection string in it. */
function safe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/postgres(ql)?:\/\/\S+/g, "[database url]");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function checkConfig(): { config: Config; env: Record<string, string> } {
  let env: Record<string, string>;
  let config: Config;
  try {
    env = environment();
    config = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) report("FAIL", "config", problem);
    finish(true);
  }
  report("ok", "config", `APP_ENV=${config.env}, every variable valid`);
  const dev = developmentSecrets(env);
  if (dev.length === 0) {
    report("ok", "secrets", "JWT_SECRET, ENCRYPTION_KEY and OPERATOR_API_KEY are set");
  } else if (config.env === "development") {
    report("ok", "secrets", `${dev.join(", ")}: development defaults (fine in development only)`);
  } else {
    report(
      "warn",
      "secrets",
      `${
        dev.join(", ")
      }: development defaults in ${config.env}; set real secrets (production refuses these)`,
    );
  }
  return { config, env };
}

/** Opens the configured database, or says why it cannot (undefined). */
async function checkDatabase(config: Config): Promise<Db | undefined> {
  const target = describeDatabase(config);
  if (!config.database.url && !(await exists(pgliteDir(config.dataDir)))) {
    report("warn", "database", `${target} does not exist yet; "deno task start" creates it`);
    return undefined;
  }
  let db: Db | undefined;
  try {
    db = await openDb({
      ...databaseOptions(config),
      poolSize: 1,
      connectTimeoutMs: TIMEOUT_MS,
    });
    const ms = await db.ping(TIMEOUT_MS);
    const version = await serverVersion(db);
    report("ok", "database", `${target}: PostgreSQL ${version}, ping ${ms.toFixed(1)} ms`);
    return db;
  } catch (error) {
    await db?.close().catch(() => {});
    if (error instanceof DataDirInUseError) {
      report("warn", "database", `${safe(error)}`);
    } else {
      report("FAIL", "database", `Cannot reach ${target}: ${safe(error)}`);
    }
    return undefined;
  }
}

async function checkMigrations(db: Db, config: Config): Promise<void> {
  try {
    const status = await migrationStatus(db);
    const pending = status.filter((m) => m.appliedAt === null).map((m) => m.version);
    const unknown = await unknownVersions(db);
    const applied = status.length - pending.length;
    if (pending.length === 0) {
      report("ok", "migrations", `${applied} applied, none pending`);
    } else if (config.migrateOnStart) {
      report(
        "warn",
        "migrations",
        `${pending.length} pending (${pending.join(", ")}); "deno task start" applies them`,
      );
    } else {
      report(
        "FAIL",
        "migrations",
        `${pending.length} pending (${
          pending.join(", ")
        }); start refuses to run on them: run "deno task migrate up"`,
      );
    }
    if (unknown.length > 0) {
      report(
        "warn",
        "migrations",
        `the database has migration(s) ${
          unknown.join(", ")
        } that this release does not know (a newer release ran)`,
      );
    }
  } catch (error) {
    report("FAIL", "migrations", `Cannot read the migrations: ${safe(error)}`);
  }
}

async function checkKv(config: Config): Promise<void> {
  const path = kvPath(config.dataDir);
  if (!(await exists(config.dataDir))) {
    report("warn", "kv", `${config.dataDir} does not exist yet; "deno task start" creates it`);
    return;
  }
  let kv: Deno.Kv | undefined;
  try {
    kv = await Deno.openKv(path);
    // A write proves the folder is writable, as the queue and rate limits need.
    const key = ["doctor", crypto.randomUUID()];
    await kv.set(key, Date.now(), { expireIn: 60_000 });
    await kv.delete(key);
    report("ok", "kv", `Deno KV at ${path}`);
  } catch (error) {
    report("FAIL", "kv", `Cannot use Deno KV at ${path}: ${safe(error)}`);
  } finally {
    kv?.close();
  }
}

/** Reaches the operator's alert channels (without sending anything). */
async function checkOperatorChannels(config: Config): Promise<void> {
  const { operator, telegramApiUrl, discordApiUrl } = config.notify;
  const targets: NotifyTarget[] = [];
  if (operator.telegram) targets.push({ kind: "telegram", ...operator.telegram });
  if (operator.discord) targets.push({ kind: "discord", webhookUrl: operator.discord.webhookUrl });
  if (targets.length === 0) {
    report("skip", "alerts", "no operator channel: operational alerts go to the log only");
    return;
  }
  for (const target of targets) {
    const outcome = await probeNotificationTarget(target, { telegramApiUrl, discordApiUrl });
    const name = target.kind === "telegram" ? "Telegram" : "Discord";
    if (outcome.ok) report("ok", "alerts", `operator ${name} channel answers`);
    else if (outcome.retryable) report("warn", "alerts", outcome.error);
    else report("FAIL", "alerts", `${outcome.error}: the operator would get no alerts`);
  }
}

async function checkRedis(config: Config): Promise<void> {
  if (!config.upstash) {
    report("skip", "redis", "not configured: rate limits are counted per instance");
    return;
  }
  const host = new URL(config.upstash.url).host;
  try {
    const started = performance.now();
    const answer = await createUpstashRedis(config.upstash, { timeoutMs: 3_000 }).ping();
    if (answer !== "PONG") throw new Error(`answered "${answer}" to PING`);
    report(
      "ok",
      "redis",
      `Upstash at ${host} answers (${Math.round(performance.now() - started)} ms)`,
    );
  } catch (error) {
    // The API keeps working on local limits, so this is a warning, not a failure.
    report(
      "warn",
      "redis",
      `Upstash at ${host} does not answer (${
        (error as Error).message
      }); rate limits fall back to per-instance counts`,
    );
  }
}

async function checkBrokers(db: Db, config: Config): Promise<void> {
  let accounts;
  try {
    accounts = await alpacaCredentials(db);
  } catch (error) {
    report("FAIL", "brokers", `Cannot read the broker accounts: ${safe(error)}`);
    return;
  }
  if (accounts === null) {
    report("skip", "brokers", "no broker accounts table yet (migrations pending)");
    return;
  }
  if (accounts.length === 0) {
    report("ok", "brokers", "no Alpaca account (paper accounts need no credentials)");
    return;
  }
  const keys = new Map<number, { name: string; cipher: Cipher }>([
    [config.encryptionKeyVersion, {
      name: "ENCRYPTION_KEY",
      cipher: await createCipher(config.encryptionKey, config.encryptionKeyVersion),
    }],
  ]);
  if (config.encryptionKeyPrevious) {
    keys.set(config.encryptionKeyVersion - 1, {
      name: "ENCRYPTION_KEY_PREVIOUS",
      cipher: await createCipher(config.encryptionKeyPrevious, config.encryptionKeyVersion - 1),
    });
  }
  const current: string[] = [];
  const previous: string[] = [];
  const missing: string[] = [];
  const broken: string[] = [];
  for (const account of accounts) {
    const label = `"${account.alias}" (${account.id})`;
    if (!account.credentials || account.credentials.length === 0) {
      missing.push(label);
      continue;
    }
    const sealed = new Uint8Array(account.credentials);
    const key = keys.get(sealed[0]!);
    try {
      if (!key) throw new Error(`sealed with key version ${sealed[0]}`);
      // Decrypted only to prove the key opens it; the plaintext is dropped at once.
      await key.cipher.decrypt(sealed);
      (key.name === "ENCRYPTION_KEY" ? current : previous).push(label);
    } catch {
      broken.push(label);
    }
  }
  const n = accounts.length;
  const summary = `${n} Alpaca account(s): ${current.length} open with ENCRYPTION_KEY`;
  if (broken.length > 0) {
    report(
      "FAIL",
      "brokers",
      `${summary}; ${broken.length} do not open with ENCRYPTION_KEY${
        config.encryptionKeyPrevious ? " or ENCRYPTION_KEY_PREVIOUS" : ""
      } (was the key changed?): ${broken.join(", ")}`,
    );
  } else if (previous.length > 0) {
    report(
      "warn",
      "brokers",
      `${summary}; ${previous.length} still sealed with ENCRYPTION_KEY_PREVIOUS: re-seal them before removing it`,
    );
  } else {
    report("ok", "brokers", summary);
  }
  if (missing.length > 0) {
    report(
      "warn",
      "brokers",
      `${missing.length} Alpaca account(s) without credentials cannot trade: ${missing.join(", ")}`,
    );
  }
}

async function main(args: string[]) {
  parseFlags(args, {}, USAGE);
  print(`trendedge ${VERSION} doctor`);
  const { config } = checkConfig();
  const db = await checkDatabase(config);
  try {
    if (db) {
      await checkMigrations(db, config);
    } else {
      report("skip", "migrations", "no database to read");
    }
    await checkKv(config);
    await checkRedis(config);
    await checkOperatorChannels(config);
    if (db) await checkBrokers(db, config);
    else report("skip", "brokers", "no database to read");
  } finally {
    await db?.close();
  }
  finish();
}

if (import.meta.main) await main(Deno.args);
