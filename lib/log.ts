/**
 * One JSON object per line, through one logger. Secrets are redacted by field name before a
 * line is written, however deep they sit in the fields.
 */

/** Log levels, in the order of their severity. */
export const LOG_LEVELS = ["debug", "info", "warning", "error", "critical"] as const;
/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Where finished lines go; stdout unless a test captures them. */
export type LogSink = (line: string) => void;

/** The logger every module receives. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warning(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  critical(message: string, fields?: LogFields): void;
  /** A logger with another `logger` name and extra fields on every line. */
  child(name: string, fields?: LogFields): Logger;
  /** True when lines of `level` would be written. */
  enabled(level: LogLevel): boolean;
}

/** Field names whose values never reach a log line. */
const SECRET_FIELD =
  /pass(word)?|secret|token|authorization|cookie|api[_-]?key|^key$|webhook[_-]?key|credential|private[_-]?key|signature|dsn/i;
const REDACTED = "[REDACTED]";
const MAX_DEPTH = 6;

/**
 * Returns a copy of `value` with every secret-named field replaced by "[REDACTED]"; objects
 * nested deeper than `maxDepth` become "[TRUNCATED]".
 */
export function redact(value: unknown, depth = 0, maxDepth = MAX_DEPTH): unknown {
  if (value === null || typeof value !== "object") return value;
  if (depth >= maxDepth) return "[TRUNCATED]";
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Error) return serializeError(value);
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, maxDepth));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_FIELD.test(k) && v !== null && v !== undefined
      ? REDACTED
      : redact(v, depth + 1, maxDepth);
  }
  return out;
}

/** An error as log fields: name, message and stack, with its cause chain. */
export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const out: Record<string, unknown> = { name: error.name, message: error.message };
  if (error.stack) out.stack = error.stack;
  if ("code" in error && error.code !== undefined) out.code = error.code;
  if (error.cause !== undefined) out.cause = serializeError(error.cause);
  return out;
}

const encoder = new TextEncoder();

/** Writes a line to stdout synchronously, so nothing is lost when the process exits. */
export const stdoutSink: LogSink = (line) => {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
};

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  sink?: LogSink;
  /** Milliseconds since the epoch; injected so tests see fixed timestamps. */
  now?: () => number;
  fields?: LogFields;
}

/**
 * Creates the root logger.
 *
 * @example
 * const log = createLogger("trendedge", { level: "info" });
 * log.info("Server listening", { url: "http://localhost:8000" });
 */
export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? "info");
  const sink = options.sink ?? stdoutSink;
  const now = options.now ?? Date.now;
  return build(name, options.fields ?? {});

  function build(logger: string, base: LogFields): Logger {
    function write(level: LogLevel, message: string, fields?: LogFields) {
      if (LOG_LEVELS.indexOf(level) < threshold) return;
      const record = redact({ ...base, ...fields }) as LogFields;
      const line = JSON.stringify({
        timestamp: new Date(now()).toISOString(),
        level: level.toUpperCase(),
        logger,
        message,
        ...record,
      });
      sink(line);
    }
    return {
      debug: (m, f) => write("debug", m, f),
      info: (m, f) => write("info", m, f),
      warning: (m, f) => write("warning", m, f),
      error: (m, f) => write("error", m, f),
      critical: (m, f) => write("critical", m, f),
      child: (child, fields) => build(`${logger}.${child}`, { ...base, ...fields }),
      enabled: (level) => LOG_LEVELS.indexOf(level) >= threshold,
    };
  }
}

/** A logger that keeps its lines in memory, for tests. */
export function memoryLogger(level: LogLevel = "debug"): { log: Logger; lines: LogFields[] } {
  const lines: LogFields[] = [];
  const log = createLogger("test", { level, sink: (line) => lines.push(JSON.parse(line)) });
  return { log, lines };
}
