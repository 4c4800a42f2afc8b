/**
 * CPU time from Linux's /proc, to tell who was busy during a run: the server, the load client,
 * or the rest of the machine. Elsewhere every figure is NaN.
 */

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux we run

/** CPU seconds (user + system, every thread) a process has used; `"self"` for this one. */
export function processCpuSeconds(pid: number | "self"): number {
  try {
    // After "(comm) ", field 0 is the state; utime is field 11 and stime field 12.
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** CPU seconds the whole machine has been busy (user, nice, system, irq, softirq), all cores. */
export function machineCpuSeconds(): number {
  try {
    const [user, nice, system, _idle, _iowait, irq, softirq] = Deno.readTextFileSync("/proc/stat")
      .split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (user! + nice! + system! + irq! + softirq!) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** A CPU sample of a server, this process and the machine. */
export interface CpuSample {
  at: number;
  server: number;
  client: number;
  machine: number;
}

/** Samples now. */
export function sampleCpu(serverPid: number): CpuSample {
  return {
    at: performance.now(),
    server: processCpuSeconds(serverPid),
    client: processCpuSeconds("self"),
    machine: machineCpuSeconds(),
  };
}

/** CPU used between two samples, in cores (1 = one core busy the whole time). */
export interface CpuUse {
  server: number;
  client: number;
  /** Everything else: other processes (PostgreSQL's backends among them) and the kernel. */
  rest: number;
  /** Server CPU seconds, for a per-request figure. */
  serverSeconds: number;
}

/** What was used from `from` to `to`. */
export function cpuBetween(from: CpuSample, to: CpuSample): CpuUse {
  const seconds = (to.at - from.at) / 1000;
  const server = to.server - from.server;
  const client = to.client - from.client;
  const machine = to.machine - from.machine;
  return {
    server: server / seconds,
    client: client / seconds,
    rest: Math.max(0, machine - server - client) / seconds,
    serverSeconds: server,
  };
}
