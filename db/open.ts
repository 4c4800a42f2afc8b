/** Opening the configured database, the same way for the service and every operator command. */
import { type Config, ConfigError, environment, loadConfig } from "../config.ts";
import { fail } from "../lib/cli.ts";
import { type Db, openDb, type OpenDbOptions } from "./client.ts";
import { pgliteDir } from "./paths.ts";

/** The database options the configuration names: a PostgreSQL URL, or PGlite under DATA_DIR. */
export function databaseOptions(config: Config): OpenDbOptions {
  return {
    url: config.database.url,
    dataDir: config.database.url ? undefined : pgliteDir(config.dataDir),
    poolSize: config.database.poolSize,
    prepare: config.database.prepare,
    statementTimeoutMs: config.database.statementTimeoutMs,
  };
}

/** Which database that is, for people ("PostgreSQL (DATABASE_URL)" or the PGlite folder). */
export function describeDatabase(config: Config): string {
  return config.database.url
    ? "PostgreSQL (DATABASE_URL)"
    : `PGlite at ${pgliteDir(config.dataDir)}`;
}

/**
 * For operator commands: loads the configuration (exit 78 with every bad variable when it is
 * invalid) and opens its database with a single connection. `overrides` adjust the options
 * (a backup lifts the transaction deadline, for instance).
 */
export async function openOperatorDb(
  overrides: Partial<OpenDbOptions> = {},
): Promise<{ config: Config; db: Db }> {
  let config: Config;
  try {
    config = loadConfig(environment());
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 78);
    throw error;
  }
  try {
    return { config, db: await openDb({ ...databaseOptions(config), poolSize: 1, ...overrides }) };
  } catch (error) {
    fail((error as Error).message, 1);
  }
}
