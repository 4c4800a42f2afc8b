import assert from "node:assert/strict";
import { checkReadiness } from "./health.ts";

Deno.test("readiness runs probes in parallel and marks a hanging one as failed at its deadline", async () => {
  let aborted = false;
  const started = performance.now();
  const report = await checkReadiness({
    fast: () => Promise.resolve({ version: 1 }),
    hangs: (signal) =>
      new Promise((_, reject) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          reject(signal.reason);
        });
      }),
    broken: () => Promise.reject(new Error("connect ECONNREFUSED postgres://user:pw@db:5432/app")),
  }, 100);
  assert.ok(performance.now() - started < 1000);
  assert.equal(report.status, "degraded");
  assert.equal(report.checks.fast?.status, "ok");
  assert.equal((report.checks.fast as Record<string, unknown>).version, 1);
  assert.deepEqual(
    report.checks.hangs &&
      { s: report.checks.hangs.status, m: (report.checks.hangs as { message: string }).message },
    {
      s: "error",
      m: "no answer within 100 ms",
    },
  );
  assert.ok(aborted, "the probe was told to give up");
  const broken = report.checks.broken as { message: string };
  assert.ok(!broken.message.includes("pw@"), "a connection string never reaches the report");
});

Deno.test("readiness is ok when every probe passes", async () => {
  const report = await checkReadiness({
    a: () => Promise.resolve({}),
    b: () => Promise.resolve({}),
  }, 100);
  assert.equal(report.status, "ok");
});
