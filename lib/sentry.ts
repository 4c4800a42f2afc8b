/**
 * Error reporting to Sentry (`@sentry/deno`) when SENTRY_DSN is set. The reporter listens to
 * the log: every `error` or `critical` line becomes an event, so whatever the process finds
 * worth an error log — a failed request, a crashed actor, an opened circuit breaker, the
 * database going away — reaches the operator with the same words. Lines arrive already
 * redacted by the logger; `beforeSend` scrubs again (secret-named fields, cookies, auth headers,
 * query strings) in case an integration added something. The request id and user id of the line
 * become tags, so an event leads straight to the request's log lines.
 */
import * as Sentry from "@sentry/deno";
import type { AppEnv } from "../config.ts";
import { redact } from "./log.ts";

/** Options of {@linkcode createErrorReporter}. */
export interface ErrorReporterOptions {
  dsn: string;
  environment: AppEnv;
  release: string;
  /** Share of error events sent (default 1). */
  sampleRate?: number;
  /** Share of traces sent (default by environment, {@linkcode tracesSampleRateFor}). */
  tracesSampleRate?: number;
  /** Events sent per minute at most; the rest are dropped and counted (default 60). */
  maxPerMinute?: number;
}

/** Sends error log lines to Sentry. */
export interface ErrorReporter {
  /** Reports one JSON log line if it is an error (a sink of lib/log.ts). */
  line(line: string): void;
  /** Events dropped by the per-minute cap so far. */
  readonly dropped: number;
  /** Waits until queued events are sent, up to `timeoutMs`. */
  flush(timeoutMs: number): Promise<boolean>;
  /** Flushes and stops the client. */
  close(timeoutMs: number): Promise<boolean>;
}

const REPORTED_LEVELS = new Set(["ERROR", "CRITICAL"]);
const TAG_FIELDS = ["request_id", "user_id", "account_id", "alias", "code", "path", "method"];

/** Traces sent by environment: few in production, more where traffic is light. */
export function tracesSampleRateFor(environment: AppEnv): number {
  switch (environment) {
    case "production":
      return 0.05;
    case "staging":
      return 0.25;
    default:
      return 0;
  }
}

/**
 * Starts the Sentry client (once per process) and returns the reporter.
 *
 * @example
 * const reporter = createErrorReporter({ dsn, environment: "production", release: "0.1.0" });
 * const log = createLogger("trendedge", { sink: (l) => { stdoutSink(l); reporter.line(l); } });
 */
export function createErrorReporter(options: ErrorReporterOptions): ErrorReporter {
  const maxPerMinute = options.maxPerMinute ?? 60;
  Sentry.init({
    dsn: options.dsn,
    environment: options.environment,
    release: `trendedge@${options.release}`,
    sampleRate: options.sampleRate ?? 1,
    tracesSampleRate: options.tracesSampleRate ?? tracesSampleRateFor(options.environment),
    sendDefaultPii: false,
    // No global patching (fetch, console, Deno.serve): events come from the log only.
    defaultIntegrations: false,
    integrations: [Sentry.dedupeIntegration(), Sentry.linkedErrorsIntegration()],
    beforeSend: (event) => scrubEvent(event),
    beforeBreadcrumb: () => null,
  });
  let windowStart = 0;
  let sent = 0;
  let dropped = 0;
  return {
    get dropped() {
      return dropped;
    },
    line(line) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line);
      } catch {
        return;
      }
      if (!REPORTED_LEVELS.has(String(record.level))) return;
      const now = Date.now();
      if (now - windowStart >= 60_000) {
        windowStart = now;
        sent = 0;
      }
      if (sent >= maxPerMinute) {
        dropped++;
        return;
      }
      sent++;
      Sentry.withScope((scope) => {
        scope.setLevel(record.level === "CRITICAL" ? "fatal" : "error");
        scope.setTag("logger", String(record.logger ?? ""));
        for (const field of TAG_FIELDS) {
          const value = record[field];
          if (value !== undefined && value !== null) scope.setTag(field, String(value));
        }
        if (typeof record.user_id === "string") scope.setUser({ id: record.user_id });
        const { timestamp: _t, level: _l, logger: _g, message, error, ...rest } = record;
        scope.setContext("log", rest);
        const message_ = String(message ?? "Error");
        if (error && typeof error === "object") {
          scope.setFingerprint([String(record.logger ?? ""), message_]);
          Sentry.captureException(toError(error as Record<string, unknown>, message_));
        } else {
          Sentry.captureMessage(message_);
        }
      });
    },
    flush: (timeoutMs) => Sentry.flush(timeoutMs),
    close: (timeoutMs) => Sentry.close(timeoutMs),
  };
}

/**
 * Removes what must never leave the process: secret-named fields anywhere in the event (by the
 * logger's rule), cookies, auth headers, query strings and request bodies.
 */
export function scrubEvent<E extends Sentry.Event>(event: E): E {
  // Deep enough for stack frames; the logger's own depth limit would cut them.
  const scrubbed = redact(event, 0, 32) as E;
  const request = scrubbed.request;
  if (request) {
    delete request.cookies;
    delete request.data;
    delete request.query_string;
    if (request.url) request.url = request.url.split("?")[0];
    if (request.headers) {
      for (const name of Object.keys(request.headers)) {
        if (/^(authorization|cookie|x-api-key|x-csrf-token)$/i.test(name)) {
          delete request.headers[name];
        }
      }
    }
  }
  return scrubbed;
}

/** Rebuilds an Error from a logged one (name, message, stack, cause), for Sentry's stack parser. */
function toError(logged: Record<string, unknown>, fallback: string): Error {
  const error = new Error(String(logged.message ?? fallback));
  error.name = String(logged.name ?? "Error");
  error.stack = typeof logged.stack === "string" ? logged.stack : `${error.name}: ${error.message}`;
  if (logged.cause && typeof logged.cause === "object") {
    error.cause = toError(logged.cause as Record<string, unknown>, fallback);
  }
  return error;
}
