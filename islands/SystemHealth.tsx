/**
 * The readiness probes on the system page, checked again every 10 s through the public
 * `/health/ready` (the detailed view needs the operator key, which never reaches a browser).
 * A failing probe turns the banner red. One check runs at a time; one that gets no answer within
 * 10 s (or the period) shows that the server does not answer.
 */
import { useEffect, useState } from "preact/hooks";
import type { CheckResult } from "../lib/health.ts";
import { formatTime } from "./_client/format.ts";
import { pollEvery } from "./_client/refresh.ts";

/** How long a check may wait for /health/ready (at least; the period when that is longer). */
const WAIT_MS = 10_000;

/** Props. */
export interface SystemHealthProps {
  status: "ok" | "degraded";
  checks: Record<string, CheckResult>;
  /** When the server checked (ISO). */
  checkedAt: string;
  zone: string;
  /** Seconds between checks (10 on the page). */
  everySeconds: number;
  [key: string]: unknown;
}

/** What a check says beyond its status and latency, as one line. */
export function checkDetail(check: CheckResult): string {
  if (check.status === "error") return check.message;
  return Object.entries(check)
    .filter(([key]) => key !== "status" && key !== "latency_ms")
    .map(([key, value]) =>
      `${key.replaceAll("_", " ")}: ${
        Array.isArray(value) ? (value.length ? value.join(", ") : "none") : String(value)
      }`
    )
    .join(" · ");
}

export default function SystemHealth(props: SystemHealthProps) {
  const [report, setReport] = useState({
    status: props.status,
    checks: props.checks,
    checkedAt: props.checkedAt,
  });
  const [unreachable, setUnreachable] = useState(false);

  useEffect(() =>
    // One check at a time; one that gets no answer within WAIT_MS (or the period) says so.
    pollEvery(
      props.everySeconds * 1000,
      Math.max(WAIT_MS, props.everySeconds * 1000),
      async ({ signal, timedOut }) => {
        try {
          const res = await fetch("/health/ready", { cache: "no-store", signal });
          const body = await res.json() as {
            status: "ok" | "degraded";
            checks: SystemHealthProps["checks"];
          };
          setReport({ ...body, checkedAt: new Date().toISOString() });
          setUnreachable(false);
        } catch {
          if (!signal.aborted || timedOut()) setUnreachable(true);
        }
      },
    ), []);

  const failing = Object.entries(report.checks).filter(([, c]) => c.status !== "ok");
  return (
    <section class="card" aria-labelledby="health" data-health={report.status}>
      <div class="card-title">
        <h2 id="health">Health</h2>
        <span class="muted">
          checked{" "}
          <time dateTime={report.checkedAt}>{formatTime(report.checkedAt, props.zone)}</time>{" "}
          · every {props.everySeconds} s
        </span>
      </div>
      {unreachable && <p class="banner danger" role="alert">The server does not answer.</p>}
      {failing.length > 0
        ? (
          <p class="banner danger" role="alert" data-failing={failing.map(([n]) => n).join(" ")}>
            Degraded: {failing.map(([name, c]) => `${name} (${checkDetail(c)})`).join("; ")}
          </p>
        )
        : (
          <p class="banner ok" role="status">
            All {Object.keys(report.checks).length} probes answer.
          </p>
        )}
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Probe</th>
              <th scope="col">Status</th>
              <th scope="col" class="num">Latency</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(report.checks).map(([name, check]) => (
              <tr key={name} data-probe={name} data-status={check.status}>
                <td>{name}</td>
                <td>
                  <span class={`badge ${check.status === "ok" ? "ok" : "failed"}`}>
                    {check.status}
                  </span>
                </td>
                <td class="num">{check.latency_ms} ms</td>
                <td>{checkDetail(check)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
