/**
 * `deno task bench [name...]`: runs every bench in order (or only the named ones, e.g.
 * `deno task bench pipeline`) and prints what it measured. Each bench module
 * exports `bench()`, writes its own tables, and can also run alone
 * (`deno run -A bench/http_stack.ts`). Servers under test run in child processes, which are
 * stopped (and their temp folders and databases removed) on failure and on Ctrl-C too.
 *
 * Results vary with what else the machine runs (2 cores: one for the load client, one for the
 * server), so the run waits up to QUIET_WAIT_MS for the rest of the machine to go quiet and
 * the header says how busy it was; each table row shows it again as "rest CPU".
 */
import { machineCpuSeconds, processCpuSeconds } from "./_cpu.ts";
import { writeLine } from "./_report.ts";
import { stopAllServers } from "./_spawn.ts";

/** The benches, in the order they run. */
const BENCHES: ReadonlyArray<{ name: string; load: () => Promise<{ bench(): Promise<void> }> }> = [
  { name: "http_stack", load: () => import("./http_stack.ts") },
  { name: "pipeline", load: () => import("./pipeline.ts") },
  { name: "scan", load: () => import("./scan.ts") },
  { name: "paint", load: () => import("./paint.ts") },
  { name: "hub", load: () => import("./hub.ts") },
];

/** Cores the rest of the machine may keep busy before the benches start. */
const QUIET_CORES = 0.25;
const QUIET_WAIT_MS = 15_000;

/** Waits (bounded) until other processes use under QUIET_CORES; returns their last load. */
async function waitForQuiet(): Promise<{ cores: number; waitedMs: number }> {
  const started = performance.now();
  for (;;) {
    const machine = machineCpuSeconds();
    const self = processCpuSeconds("self");
    const at = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const cores = (machineCpuSeconds() - machine - (processCpuSeconds("self") - self)) /
      ((performance.now() - at) / 1000);
    const waitedMs = performance.now() - started;
    if (!(cores >= QUIET_CORES) || waitedMs >= QUIET_WAIT_MS) return { cores, waitedMs };
  }
}

function cpuModel(): string {
  try {
    const line = Deno.readTextFileSync("/proc/cpuinfo").split("\n")
      .find((l) => l.startsWith("model name"));
    return line?.split(":")[1]?.trim() ?? "unknown CPU";
  } catch {
    return "unknown CPU";
  }
}

async function main(names: string[]): Promise<number> {
  const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length > 0) {
    writeLine(
      `Cannot run benches ${unknown.map((n) => `"${n}"`).join(", ")}: the benches are ${
        BENCHES.map((b) => b.name).join(", ")
      }`,
    );
    return 64; // EX_USAGE
  }
  const selected = names.length === 0 ? BENCHES : BENCHES.filter((b) => names.includes(b.name));
  const started = performance.now();
  const quiet = await waitForQuiet();
  const load = Deno.loadavg().map((v) => v.toFixed(2)).join(" ");
  writeLine(`trendedge benches — ${new Date().toISOString()}`);
  writeLine(
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.os}/${Deno.build.arch}, ` +
      `${navigator.hardwareConcurrency} CPUs (${cpuModel()}), load average ${load}`,
  );
  writeLine(
    `Other processes at start: ${Math.max(0, quiet.cores).toFixed(2)} cores busy` +
      (quiet.waitedMs > 1500
        ? ` (after waiting ${(quiet.waitedMs / 1000).toFixed(0)} s for quiet)`
        : ""),
  );
  writeLine();

  let failed = 0;
  for (const { name, load } of selected) {
    const t = performance.now();
    writeLine(`== ${name} ==`);
    try {
      await (await load()).bench();
    } catch (error) {
      failed++;
      writeLine(`!! ${name} failed: ${(error as Error).stack ?? String(error)}`);
    } finally {
      await stopAllServers();
    }
    writeLine(`(${name}: ${((performance.now() - t) / 1000).toFixed(1)} s)`);
    writeLine();
  }
  writeLine(
    `${selected.length - failed}/${selected.length} benches ran in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s`,
  );
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      await stopAllServers();
      Deno.exit(130);
    });
  }
  Deno.exit(await main(Deno.args));
}
