/**
 * The container health check: `GET /health` on this process's own port. Exits 0 when it answers
 * 200 with `"status": "ok"` within 3 s, else 1 with the reason on stderr (Docker's convention).
 * `--url` checks another address. The Dockerfile's HEALTHCHECK runs it; the deno image has no
 * curl.
 */
import { ConfigError, environment, loadConfig } from "../config.ts";
import { fail, parseFlags, print } from "../lib/cli.ts";

const USAGE =
  "Usage: deno run --allow-net --allow-env --allow-read tasks/healthcheck.ts [--url <url>]";
const TIMEOUT_MS = 3_000;

/** Where this machine's trendedge listens, from HOST and PORT. */
function localUrl(): string {
  let host: string;
  let port: number;
  try {
    ({ host, port } = loadConfig(environment()));
  } catch (error) {
    if (error instanceof ConfigError) fail(`Unhealthy: ${error.message}`, 1);
    throw error;
  }
  // A wildcard address listens on loopback too.
  if (host === "0.0.0.0" || host === "") host = "127.0.0.1";
  else if (host === "::") host = "::1";
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}/health`;
}

async function main(args: string[]) {
  const values = parseFlags(args, { url: {} }, USAGE);
  const url = values.url ?? localUrl();
  let status: number;
  let body: { status?: unknown; version?: unknown } | undefined;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    status = res.status;
    body = await res.json().catch(() => undefined);
  } catch (error) {
    fail(`Unhealthy: ${url}: ${(error as Error).message}`, 1);
  }
  if (status !== 200 || body?.status !== "ok") {
    fail(`Unhealthy: ${url} answered ${status} ${JSON.stringify(body ?? null)}`, 1);
  }
  print(`Healthy: ${url} (version ${body.version})`);
}

if (import.meta.main) await main(Deno.args);
