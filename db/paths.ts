/** Where the embedded engines keep their files under DATA_DIR. */

/** The PGlite data directory. */
export function pgliteDir(dataDir: string): string {
  return `${dataDir}/pglite`;
}

/** The local Deno KV file. */
export function kvPath(dataDir: string): string {
  return `${dataDir}/kv.sqlite3`;
}
