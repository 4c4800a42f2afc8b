/** Readiness: every dependency probed in parallel, each with its own deadline. */

/** A probe of one dependency: resolves with details when healthy, throws when not. */
export type Probe = (signal: AbortSignal) => Promise<Record<string, unknown>>;

/** The result of one probe, as `/health/ready` shows it. */
export type CheckResult =
  | ({ status: "ok"; latency_ms: number } & Record<string, unknown>)
  | { status: "error"; message: string; latency_ms: number };

/** The readiness report. */
export interface Readiness {
  status: "ok" | "degraded";
  checks: Record<string, CheckResult>;
}

/** Runs every probe with a deadline of `timeoutMs`; one failing probe makes the whole degraded. */
export async function checkReadiness(
  probes: Record<string, Probe>,
  timeoutMs: number,
): Promise<Readiness> {
  const entries = await Promise.all(
    Object.entries(probes).map(async ([name, probe]): Promise<[string, CheckResult]> => {
      const started = performance.now();
      const controller = new AbortController();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new Error(`no answer within ${timeoutMs} ms`);
          controller.abort(error);
          reject(error);
        }, timeoutMs);
      });
      try {
        const details = await Promise.race([probe(controller.signal), deadline]);
        return [name, { status: "ok", latency_ms: round(performance.now() - started), ...details }];
      } catch (error) {
        return [name, {
          status: "error",
          message: probeMessage(error),
          latency_ms: round(performance.now() - started),
        }];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const checks = Object.fromEntries(entries);
  const status = entries.every(([, r]) => r.status === "ok") ? "ok" : "degraded";
  return { status, checks };
}

/** A short, safe description of why a probe failed (no stack, no connection string). */
function probeMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/postgres(ql)?:\/\/\S+/g, "[database url]").slice(0, 200);
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
