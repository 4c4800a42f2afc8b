/** trendedge as a process: a fresh start with no configuration, signals, bad configuration. */
import assert from "node:assert/strict";
import { startServer } from "./_process.ts";

Deno.test("a fresh start with no configuration serves health on PGlite, then exits 0 on SIGTERM under load", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "trendedge-server-" });
  try {
    await using server = await startServer({ DATA_DIR: dataDir, SHUTDOWN_TIMEOUT_MS: "8000" });
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    assert.ok(health.headers.get("x-request-id"));
    assert.equal(health.headers.get("x-frame-options"), "DENY");
    const ready = await fetch(`${server.url}/health/ready`);
    assert.equal(ready.status, 200, await ready.clone().text());
    assert.equal((await ready.json()).checks.database.engine, "pglite");
    assert.ok((await Deno.stat(`${dataDir}/pglite`)).isDirectory, "PGlite lives under DATA_DIR");
    assert.ok((await Deno.stat(`${dataDir}/kv.sqlite3`)).isFile, "KV lives under DATA_DIR");

    // Load: 8 clients in a loop; SIGTERM arrives in the middle of it.
    let stop = false;
    const statuses: number[] = [];
    let refused = 0;
    const clients = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          const res = await fetch(`${server.url}/health/ready`);
          await res.body?.cancel();
          statuses.push(res.status);
        } catch {
          refused++; // after the listener closed: connection refused, as it should be
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    const signalled = performance.now();
    server.child.kill("SIGTERM");
    const status = await server.status;
    const exitMs = performance.now() - signalled;
    stop = true;
    await Promise.all(clients);

    assert.equal(status.code, 0, "exit code 0 after a clean shutdown");
    assert.ok(exitMs < 8000, `exited within the deadline (${Math.round(exitMs)} ms)`);
    assert.ok(
      statuses.length > 20,
      `the load ran (${statuses.length} answers, ${refused} refused)`,
    );
    assert.deepEqual([...new Set(statuses)], [200], "every answered request succeeded");
    const messages = server.lines.map((l) => l.message);
    assert.ok(messages.includes("Shutting down"));
    assert.equal(server.lines.find((l) => l.message === "Stopped")?.clean, true);
    assert.ok(
      server.lines.every((l) => typeof l.timestamp === "string" && typeof l.level === "string"),
      "every line is JSON",
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("an invalid configuration stops start-up with one message naming every bad variable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts"],
    cwd: new URL("../", import.meta.url),
    env: { NO_COLOR: "1", PORT: "http", DATABASE_URL: "mysql://nope", APP_ENV: "production" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 78);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 1, "one message");
  const [line] = lines;
  assert.equal(line.level, "CRITICAL");
  const names = (line.problems as string[]).map((p) => /^"([A-Z_]+)"/.exec(p)?.[1]).sort();
  assert.deepEqual(names, [
    "DATABASE_URL",
    "ENCRYPTION_KEY",
    "JWT_SECRET",
    "OPERATOR_API_KEY",
    "PORT",
  ]);
});
